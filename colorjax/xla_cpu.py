"""XLA:CPU choices, decided by what the installed jaxlib does, not by its version: compiler
options for colorjax's compiled steps, and whether a formulation compiles well inside a loop.

jaxlib 0.10 to 0.12 hand CPU convolutions to YNNPACK (a '__ynn_fusion'); XLA's own (Eigen)
convolutions train these networks faster: per step on 2 cores, YUV GAN 1.6x and Zhang et al.
1.7x, the U-Net alike (`python run.py --experiment=benchmark`). options() finds out once per
process, by compiling a lone convolution, dot, reduction and elementwise op and reading the
compiled programs, which of them YNNPACK takes; if it takes the convolution, the options keep
YNNPACK for everything else it takes (verified: those programs compile exactly as by default)
and drop the convolution. They are per-compilation options (jax.jit's compiler_options), so
nothing process-wide changes: a notebook that started JAX first gets them too. A user's own
XLA_FLAGS setting of the option is left to rule.
"""

import functools
import os
import re

import jax
import jax.numpy as jnp

OPTION = 'xla_cpu_experimental_ynn_fusion_type'
TYPE = 'LIBRARY_FUSION_TYPE_'


def _probes():
  """fusion type -> (a function, its arguments) that only that type hands to YNNPACK."""
  image, kernel, matrix = jnp.ones((2, 16, 16, 32)), jnp.ones((3, 3, 32, 32)), jnp.ones((64, 64))
  return {
      'INDIVIDUAL_CONVOLUTION': (lambda x, k: jax.lax.conv_general_dilated(
          x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')), (image, kernel)),
      'INDIVIDUAL_DOT': (lambda a: a @ a, (matrix,)),
      'DOT': (lambda a: jnp.tanh(a @ a) + a, (matrix,)),
      'REDUCE': (lambda a: jnp.sum(a, axis=0), (matrix,)),
      'ELTWISE': (lambda a: jnp.tanh(a) * a + 1.0, (matrix,)),
  }


def _compiled(probe, options=None) -> str:
  function, args = probe
  return program_text(jax.jit(function, compiler_options=options).lower(*args).compile())


def program_text(compiled) -> str:
  """A compiled program's text without its metadata (op names, source locations), which
  depend on where the function was first traced, not on what XLA made of it."""
  text = re.sub(r'^(FileNames|FunctionNames|FileLocations|StackFrames)\n.*?(\n\n|\Z)', '',
                compiled.as_text(), flags=re.S | re.M)
  return re.sub(r', metadata=\{[^}]*\}', '', text)


def _taken_by_ynnpack(hlo: str) -> bool:
  return '__ynn_fusion' in hlo


def choose(compile_probe) -> dict[str, str]:
  """The options, given compile_probe(type, options) -> the compiled program's text of that
  type's probe (options None: the default). {} when YNNPACK takes no convolution, or when no
  option setting keeps everything else as the default compiles it."""
  default = {kind: compile_probe(kind, None) for kind in _probes()}
  if not _taken_by_ynnpack(default['INDIVIDUAL_CONVOLUTION']):
    return {}
  taken = [kind for kind, hlo in default.items()
           if kind != 'INDIVIDUAL_CONVOLUTION' and _taken_by_ynnpack(hlo)]
  options = {OPTION: ','.join(TYPE + kind for kind in taken)}
  try:
    unchanged = all(compile_probe(kind, options) == default[kind] for kind in taken)
    convolution = compile_probe('INDIVIDUAL_CONVOLUTION', options)
  except Exception:  # an option this jaxlib does not know: leave its defaults alone
    return {}
  return options if unchanged and not _taken_by_ynnpack(convolution) else {}


@functools.cache
def options() -> dict[str, str]:
  """The compiler options colorjax's jits take on this process's backend ({} off CPU)."""
  if jax.default_backend() != 'cpu' or f'--{OPTION}' in os.environ.get('XLA_FLAGS', ''):
    return {}
  probes = _probes()
  return choose(lambda kind, options: _compiled(probes[kind], options))


def jit(function, **kwargs):
  """jax.jit with options(): for the steps that run convolutions."""
  return jax.jit(function, compiler_options=options() or None, **kwargs)


def kernel_gradient(x_cnhw, grad_ionhw, transposed: bool):
  """The taps formulation's kernel gradient (3, 3, cin, cout), the sum over n, h, w of
  x[n, i, h + dy, w + dx] * grad[n, o, h, w]: a VALID convolution of x (padded NCHW, read as
  CNHW: its batch is the input channel) with the image-sized gradient as its window.
  `transposed` puts both in NHWC / HWIO first, and takes the output in NHWC (copies; what a
  jaxlib that fuses the plain form inside a loop compiles as a convolution)."""
  if transposed:
    gradient = jax.lax.conv_general_dilated(
        x_cnhw.transpose(1, 2, 3, 0), grad_ionhw.transpose(2, 3, 0, 1), (1, 1), 'VALID',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))  # (cin, 3, 3, cout)
    return gradient.transpose(1, 2, 0, 3)
  gradient = jax.lax.conv_general_dilated(x_cnhw, grad_ionhw, (1, 1), 'VALID',
                                          dimension_numbers=('CNHW', 'IOHW', 'NCHW'))
  return gradient.transpose(2, 3, 0, 1)  # (cin, cout, 3, 3) -> (3, 3, cin, cout)


def _loop_fused_convolution(hlo: str) -> bool:
  """A convolution inside a computation that a kLoop fusion calls: emitted as a plain loop
  nest rather than as XLA's convolution."""
  computations = dict(re.findall(r'^(%\S+) \(.*?\{\n(.*?)\n\}', hlo, re.S | re.M))
  called = re.findall(r'kind=kLoop, calls=(%[^,\s]+)', hlo)
  return any('convolution(' in computations.get(name, '') for name in called)


@functools.cache
def fuses_convolutions_in_loops() -> bool:
  """Whether this jaxlib compiles the taps kernel gradient, inside a lax.scan, into a loop
  fusion (jaxlib 0.12: 50 ms against 6 outside a loop, 6 -> 6 channels at 400x600)."""
  if jax.default_backend() != 'cpu':
    return False
  x, grad = jnp.ones((1, 2, 18, 18)), jnp.ones((1, 2, 16, 16))
  scan = lambda x: jax.lax.scan(
      lambda c, _: (c * 2.0, kernel_gradient(c, grad, transposed=False)), x, None, length=2)
  return _loop_fused_convolution(jit(scan).lower(x).compile().as_text())
