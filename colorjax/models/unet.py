"""The U-Net of the portrait-colorization write-up: gray -> RGB or L -> ab, any input size.

Encoder levels of two conv3x3-BN-ReLU at 16, 32, 64, 128 channels, each followed by a 2x2
max-pool and dropout (after the pooling, where the Keras original puts it); a 256-channel
bottleneck at 1/16 resolution; decoder levels of a 2x2 stride-2 transposed conv,
concatenation with the skip of the same level and two conv3x3-BN-ReLU; a 1x1 conv and a
sigmoid give the outputs in [0, 1].

The four poolings need sides divisible by 16, and the write-up's portraits are 100x75. So the
input is padded at the bottom and right by reflection and the output cropped back: mirrored
image content keeps the border statistics of a photo, where zero padding would add a black
frame and edge padding constant streaks, both of which the border convs and BatchNorm would
see. Reflection works for any side, even one pixel (jnp.pad reflects repeatedly).

`dtype` is the compute dtype (models/layers.py); the output leaves in float32.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from colorjax.models.layers import Conv3x3, ConvTranspose, Dropout, batch_norm, max_pool_2x2


class DoubleConv(nn.Module):
  """Two conv3x3-BN-ReLU: one level of the encoder or the decoder.

  The convs have no bias: the BatchNorm right after each one has its own shift. Conv3x3 is
  nn.Conv's 3x3 SAME convolution with a faster gradient on CPU (layers.py).
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    for _ in range(2):
      x = Conv3x3(self.features, use_bias=False, dtype=self.dtype)(x)
      x = nn.relu(batch_norm(train, self.dtype)(x))
    return x


class UNet(nn.Module):
  """NHWC (any H, W, channels) -> (N, H, W, out_channels) in [0, 1].

  `features` lists the encoder levels, the last one the bottleneck. Dropout follows every
  max-pool and every decoder concatenation, as in the write-up (8 layers). BatchNorm keeps
  Flax's momentum 0.9 and epsilon 1e-5 rather than the write-up's Keras 0.99 and 1e-3: at
  0.99 the running statistics need about 500 steps to forget their initial values, and the
  smoke runs train 30.
  """
  out_channels: int
  features: tuple = (16, 32, 64, 128, 256)
  dropout: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    height, width = x.shape[1:3]
    multiple = 2 ** (len(self.features) - 1)
    x = jnp.pad(x.astype(self.dtype),
                ((0, 0), (0, -height % multiple), (0, -width % multiple), (0, 0)), mode='reflect')
    skips = []
    for features in self.features[:-1]:
      x = DoubleConv(features, self.dtype)(x, train)
      skips.append(x)
      x = max_pool_2x2(x)
      x = Dropout(self.dropout, deterministic=not train)(x)
    x = DoubleConv(self.features[-1], self.dtype)(x, train)
    for features, skip in zip(reversed(self.features[:-1]), reversed(skips)):
      x = ConvTranspose(features, (2, 2), strides=(2, 2), dtype=self.dtype)(x)
      x = Dropout(self.dropout, deterministic=not train)(jnp.concatenate([x, skip], -1))
      x = DoubleConv(features, self.dtype)(x, train)
    x = nn.Conv(self.out_channels, (1, 1), dtype=self.dtype)(x)[:, :height, :width]
    return nn.sigmoid(x.astype(jnp.float32))  # in float32: bf16 rounds [0, 1] to 2^-9
