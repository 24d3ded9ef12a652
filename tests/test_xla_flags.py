"""The XLA:CPU options colorjax's command line adds (xla_flags.py)."""

import os
import subprocess
import sys

import pytest

from colorjax import xla_flags


def test_xla_flags_added_once_and_never_over_the_users(monkeypatch):
  monkeypatch.setattr(xla_flags.importlib.metadata, 'version', lambda _: xla_flags.MEASURED_JAXLIB)
  environ = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  xla_flags.add_to_environment(environ)
  xla_flags.add_to_environment(environ)
  assert environ['XLA_FLAGS'].split() == ['--xla_force_host_platform_device_count=4', *(
      f'{name}={value}' for name, value in xla_flags.CPU_FLAGS.items())]
  users = {'XLA_FLAGS': f'{next(iter(xla_flags.CPU_FLAGS))}=dot'}
  xla_flags.add_to_environment(users)
  assert users['XLA_FLAGS'] == f'{next(iter(xla_flags.CPU_FLAGS))}=dot'
  monkeypatch.setattr(xla_flags.importlib.metadata, 'version', lambda _: '0.0.1')
  other_version = {}
  xla_flags.add_to_environment(other_version)
  assert other_version == {}


@pytest.mark.slow
def test_import_colorjax_changes_nothing_in_the_process():
  code = ('import os; before = dict(os.environ); import colorjax, colorjax.inference; '
          'assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())')
  subprocess.run([sys.executable, '-c', code], check=True)


@pytest.mark.slow
def test_the_command_line_keeps_convolutions_out_of_ynnpack():
  """In a fresh process started as run.py starts: XLA compiles a convolution as its own, not
  a YNNPACK fusion (the flag reached XLA before its first compilation)."""
  code = ('from colorjax import xla_flags; xla_flags.add_to_environment()\n'
          'import jax, jax.numpy as jnp\n'
          'x, k = jnp.ones((2, 16, 16, 32)), jnp.ones((3, 3, 32, 32))\n'  # YNNPACK takes it
          "conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', "
          "dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
          'print(jax.jit(conv).lower(x, k).compile().as_text())')
  environ = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  hlo = subprocess.run([sys.executable, '-c', code], env=environ, capture_output=True,
                       text=True, check=True).stdout
  assert 'convolution(' in hlo
  assert 'ynn' not in hlo
