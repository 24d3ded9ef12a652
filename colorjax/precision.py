"""Mixed precision: what `--config.compute_dtype` means, read in one place.

'bfloat16' runs the networks' convolutions, dense layers and activations in bf16 (half the
memory traffic, the tensor cores of a GPU or TPU); everything whose rounding would change
what a run learns stays float32: the parameters and so the optimizer state (an Adam step of
1e-3 on a weight of 1 is below bf16's resolution, 2^-8), BatchNorm's batch statistics and
running averages (models/layers.batch_norm), colour conversion (color.py), and each network's
output, which the models cast to float32 before the loss, softmax, annealed mean, critic
score or metric sees it. A checkpoint holds float32 either way.
"""

import jax.numpy as jnp

from colorjax.errors import UsageError

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(config):
  """The dtype a run's networks compute in, from its top-level `compute_dtype`; a config
  saved before the field existed (an older config.json) means float32."""
  name = config.get('compute_dtype', 'float32')
  if name not in COMPUTE_DTYPES:
    raise UsageError(f"--config.compute_dtype={name!r} is not a compute dtype: use 'float32' "
                     "or 'bfloat16'")
  return COMPUTE_DTYPES[name]
