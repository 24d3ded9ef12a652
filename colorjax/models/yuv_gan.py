"""The diverse-colorization GAN of Cao et al. 2017 ("Unsupervised Diverse Colorization via
Generative Adversarial Networks"), in YUV.

Generator: fully convolutional at the input's resolution (no down-sampling, so the spatial
detail of the condition passes straight through). 100-d noise -> Dense -> one H x W plane.
Y (the condition) is concatenated before every conv ("multilayer condition"), the noise plane
before the first `noise_layers` convs ("multilayer noise": noise fed only once is forgotten
by deeper layers). Conv-BN-ReLU layers of 130, 66, 65, 65, 33 channels, then a conv to U, V
with tanh scaled to the BT.601 range. The output is YUV with the input's Y unchanged.

Discriminator: YUV image -> 4x4 stride-2 convs of 64, 128, 256, 512 channels (BatchNorm,
LeakyReLU 0.2) -> flatten -> one logit. Sizes must be multiples of 16.
"""

import flax.linen as nn
import jax.numpy as jnp

from colorjax import color
from colorjax.models.layers import Conv3x3

GENERATOR_FEATURES = (130, 66, 65, 65, 33)
DISCRIMINATOR_FEATURES = (64, 128, 256, 512)
UV_MAX = (color.U_MAX, color.V_MAX)


def _check_size(height, width):
  if height % 16 or width % 16:
    raise ValueError(f'image size {height}x{width}: the YUV GAN needs multiples of 16')


class Generator(nn.Module):
  """(Y (N, H, W, 1) in [0, 1], noise (N, noise_dim)) -> YUV (N, H, W, 3)."""
  noise_layers: int = 3   # 1: the authors' release; 3: the write-up
  noise_dim: int = 100

  @nn.compact
  def __call__(self, y_nhw1, noise_nd, train: bool = False):
    n, h, w, _ = y_nhw1.shape
    _check_size(h, w)
    noise_plane = nn.Dense(h * w)(noise_nd).reshape(n, h, w, 1)
    x = y_nhw1
    for i, features in enumerate(GENERATOR_FEATURES):
      if i:
        x = jnp.concatenate([y_nhw1, x], axis=-1)
      if i < self.noise_layers:
        x = jnp.concatenate([x, noise_plane], axis=-1)
      x = Conv3x3(features, use_bias=False)(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = Conv3x3(2, use_bias=False)(jnp.concatenate([y_nhw1, x], axis=-1))
    uv = jnp.tanh(x) * jnp.asarray(UV_MAX, x.dtype)
    return jnp.concatenate([y_nhw1, uv], axis=-1)


class Discriminator(nn.Module):
  """YUV (N, H, W, 3) -> one logit per image, (N,). `batch_norm=False` for WGAN-GP, whose
  per-sample gradient penalty is not defined through batch statistics."""
  batch_norm: bool = True

  @nn.compact
  def __call__(self, yuv_nhw3, train: bool = False):
    _check_size(*yuv_nhw3.shape[1:3])
    x = yuv_nhw3
    for features in DISCRIMINATOR_FEATURES:
      x = nn.Conv(features, (4, 4), strides=2, padding=1, use_bias=not self.batch_norm)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
      x = nn.leaky_relu(x, 0.2)
    return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]
