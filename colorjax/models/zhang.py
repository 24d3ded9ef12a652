"""The Colorful Image Colorization network (Zhang, Isola, Efros 2016).

Eight blocks: 64 (x2), 128 (x2), 256 (x3) convs each ending in a stride-2 conv (1/8
resolution), then 512 (x3), 512 (x3, dilation 2), 512 (x3, dilation 2), 512 (x3), BatchNorm
after each block's last conv; block 8 is a 4x4 stride-2 transposed conv to 256 and two 3x3
convs, back at 1/4 resolution, where a 1x1 conv gives the head: Q bin logits
(classification) or the two ab values (the MSE regression baseline). `width` scales every
channel count, for small runs on CPU.

Padding is explicit and the released network's (PyTorch, richzhang/colorization): 3x3 convs
pad `dilation` on every side, stride 2 included (Flax's 'SAME' would pad (0, 1) there and
shift the output by about 1.5 output pixels); the 4x4 transposed conv pads 1, which is
lax.conv_transpose padding 4 - 1 - 1 = 2 on a kernel that is PyTorch's flipped (the importer,
colorjax/released.py, flips it).

`dtype` is the compute dtype (models/layers.py): L - 50 is cast to it, the head's logits or
ab back to float32, so the softmax, the annealed mean and the loss are float32.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from colorjax.models import layers


class ConvStack(nn.Module):
  """`convs` 3x3 convolutions with ReLU, the last one strided, then BatchNorm: one block of
  the Zhang et al. network (BatchNorm after each block's last conv)."""
  features: int
  convs: int
  stride: int = 1
  dilation: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    for i in range(self.convs):
      stride = self.stride if i == self.convs - 1 else 1
      x = nn.relu(nn.Conv(self.features, (3, 3), strides=stride,
                          padding=[(self.dilation, self.dilation)] * 2,
                          kernel_dilation=self.dilation, dtype=self.dtype)(x))
    return layers.batch_norm(train, self.dtype)(x)


# (features, convs, stride of the last conv, dilation) of blocks 1-7.
BLOCKS = ((64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2),
          (512, 3, 1, 2), (512, 3, 1, 1))


class ZhangNet(nn.Module):
  """L (NHWC, 1 channel, 0..100) -> (N, H/4, W/4, num_outputs)."""
  num_outputs: int
  width: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, l_nhwc, train: bool = False):
    def channels(n):
      return max(1, round(n * self.width))

    x = (l_nhwc - 50.0).astype(self.dtype)  # centred first: bf16 keeps 8 bits of |L - 50|
    for features, convs, stride, dilation in BLOCKS:
      x = ConvStack(channels(features), convs, stride, dilation, self.dtype)(x, train)
    x = nn.relu(layers.ConvTranspose(channels(256), (4, 4), strides=(2, 2),
                                     padding=((2, 2), (2, 2)), dtype=self.dtype)(x))
    for _ in range(2):
      x = nn.relu(nn.Conv(channels(256), (3, 3), padding=[(1, 1), (1, 1)], dtype=self.dtype)(x))
    return nn.Conv(self.num_outputs, (1, 1), dtype=self.dtype)(x).astype(jnp.float32)
