"""The tiny CNN of the Lab normalization ablation: L (NHWC, 1 channel) -> ab (2 channels)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from colorjax.models.layers import Conv3x3, use_taps_by_default


class TinyCNN(nn.Module):
  """conv3x3(1->c), ReLU, conv3x3(c->c), ReLU, conv3x3(c->2).

  Deliberately small: with too much capacity every normalization reconstructs equally
  well and the ablation shows nothing. `taps=None` picks the faster formulation for the
  backend (layers.py); the parameters are the same either way. The convs compute in
  `dtype`; ab leaves in float32.
  """
  channels: int = 6
  taps: bool | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, l_nhwc, train: bool = False):
    del train  # no dropout or BatchNorm; the argument keeps the models' common signature
    taps = use_taps_by_default() if self.taps is None else self.taps
    x = l_nhwc.astype(self.dtype)
    x = x.transpose(0, 3, 1, 2) if taps else x
    x = nn.relu(Conv3x3(self.channels, channels_first=taps, dtype=self.dtype)(x))
    x = nn.relu(Conv3x3(self.channels, channels_first=taps, dtype=self.dtype)(x))
    x = Conv3x3(2, channels_first=taps, dtype=self.dtype)(x).astype(jnp.float32)
    return x.transpose(0, 2, 3, 1) if taps else x
