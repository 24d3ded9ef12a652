"""The XLA:CPU compiler options (xla_cpu.py): chosen from what the installed jaxlib compiles,
never from its version; and what they and the taps formulation compile to on this jaxlib."""

import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from colorjax import color, xla_cpu
from colorjax.models.tiny_cnn import TinyCNN
from colorjax.train import losses, optim, train_state

YNN = '... __ynn_fusion ...'


def _jaxlib(default_kinds, accepts=True, changes=()):
  """A fake compile_probe: YNNPACK takes `default_kinds` by default; with options it takes
  the kinds they name, unless the jaxlib does not accept them; a kind in `changes` compiles
  differently under any options."""
  def compile_probe(kind, options):
    if options is None:
      return f'{kind}: {YNN if kind in default_kinds else "plain"}'
    if not accepts:
      raise RuntimeError(f'While setting option {xla_cpu.OPTION}: not a valid enum value')
    named = {k.removeprefix(xla_cpu.TYPE) for k in options[xla_cpu.OPTION].split(',')}
    return f'{kind}: {YNN if kind in named else "plain"}{" changed" if kind in changes else ""}'
  return compile_probe


def test_the_options_drop_the_convolution_and_keep_what_else_ynnpack_takes():
  options = xla_cpu.choose(_jaxlib({'INDIVIDUAL_CONVOLUTION', 'INDIVIDUAL_DOT', 'REDUCE'}))
  assert options == {xla_cpu.OPTION: 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,'
                                     'LIBRARY_FUSION_TYPE_REDUCE'}


@pytest.mark.parametrize('jaxlib', [
    _jaxlib({'INDIVIDUAL_DOT', 'REDUCE'}),  # convolutions are XLA's already
    _jaxlib({'INDIVIDUAL_CONVOLUTION', 'REDUCE'}, accepts=False),  # an unknown option
    _jaxlib({'INDIVIDUAL_CONVOLUTION', 'REDUCE'}, changes={'REDUCE'}),  # it would change more
], ids=['no YNNPACK convolutions', 'option unknown', 'other programs change'])
def test_no_options_where_they_would_not_do_just_that(jaxlib):
  assert xla_cpu.choose(jaxlib) == {}


def _hlo(function, *args, jit=jax.jit):
  return xla_cpu.program_text(jit(function).lower(*args).compile())


def test_on_this_jaxlib_colorjaxs_jit_compiles_convolutions_as_xla_does_and_nothing_else():
  """Fails where the options are not applied on a jaxlib whose YNNPACK takes convolutions
  (as a version gate skipped jaxlib 0.11 and 0.12)."""
  probes = xla_cpu._probes()
  conv, conv_args = probes['INDIVIDUAL_CONVOLUTION']
  assert '__ynn_fusion' not in _hlo(conv, *conv_args, jit=xla_cpu.jit)
  for kind in ('INDIVIDUAL_DOT', 'REDUCE', 'ELTWISE'):
    function, args = probes[kind]
    assert _hlo(function, *args, jit=xla_cpu.jit) == _hlo(function, *args), kind


def test_a_users_xla_flags_setting_rules(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', f'--{xla_cpu.OPTION}=-individual_dot')
  xla_cpu.options.cache_clear()
  try:
    assert xla_cpu.options() == {}
  finally:
    monkeypatch.undo()
    xla_cpu.options.cache_clear()


def test_the_taps_step_compiles_no_convolution_into_a_loop_fusion():
  """The tiny CNN's training step under lax.scan, as the ablation runs it: every convolution
  of its gradient stays a convolution. (jaxlib 0.12 wrapped the NCHW kernel gradient into a
  loop fusion there, 4.8x slower than this step.)"""
  model = TinyCNN(channels=6, taps=True)
  tx = optim.make_optimizer({'name': 'adam', 'learning_rate': 1e-3})
  batch = {'rgb': jnp.zeros((1, 40, 60, 3), jnp.uint8)}
  state = jax.eval_shape(lambda: train_state.init_state(model, tx, jax.random.PRNGKey(0),
                                                        jnp.zeros((1, 40, 60, 1))))
  step = train_state.make_train_step(losses.ab_regression(model, color.NORMALIZATIONS['unit']),
                                     tx)
  hlo = _hlo(lambda s: jax.lax.scan(lambda s, _: step(s, batch), s, None, length=2), state,
             jit=xla_cpu.jit)
  convolutions = re.findall(r'convolution\(', hlo)
  assert convolutions and 'wrapped_convolution' not in hlo


@pytest.mark.slow
def test_import_colorjax_changes_nothing_in_the_process():
  code = ('import os; before = dict(os.environ); import colorjax, colorjax.inference; '
          'assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())')
  subprocess.run([sys.executable, '-c', code], check=True)
