"""XLA:CPU options colorjax's networks train faster with, which the command line adds to XLA_FLAGS.

jaxlib 0.10 hands every CPU convolution to YNNPACK by default; XLA's own (Eigen)
convolutions are faster for these networks: per training step on 2 cores at 64x64, U-Net
(batch 16) 1.18x, YUV GAN (batch 16) 1.6x, Zhang et al. softmax (batch 8) 1.13x, with the
same results to float32 rounding (`python run.py --experiment=benchmark` reports the steps).

XLA reads XLA_FLAGS once, when JAX first initializes its backend, so this must run before
the first computation: the command line (cli/main.run) does it. A flag the user set already is
left as set, and the flags are added only for the jaxlib they were measured with: an unknown XLA
flag aborts the process, and another version's defaults may differ.
"""

import importlib.metadata
import os

MEASURED_JAXLIB = '0.10.2'
CPU_FLAGS = {'--xla_cpu_experimental_ynn_fusion_type': '-individual_convolution'}


def add_to_environment(environ=os.environ):
  """Append CPU_FLAGS to environ['XLA_FLAGS'], except flags already named there."""
  try:
    if importlib.metadata.version('jaxlib') != MEASURED_JAXLIB:
      return
  except importlib.metadata.PackageNotFoundError:
    return
  flags = environ.get('XLA_FLAGS', '')
  named = {flag.split('=')[0] for flag in flags.split()}
  added = [f'{name}={value}' for name, value in CPU_FLAGS.items() if name not in named]
  if added:
    environ['XLA_FLAGS'] = ' '.join([flags, *added]).strip()
