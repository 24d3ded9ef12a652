"""The diverse-colorization GAN of Cao et al. 2017 ("Unsupervised Diverse Colorization via
Generative Adversarial Networks"), in two published layouts (LAYOUTS).

Generator: fully convolutional at the input's resolution (no down-sampling, so the spatial
detail of the condition passes straight through). 100-d noise -> Dense -> one H x W plane.
Y (the condition) is concatenated before every conv ("multilayer condition"), the noise plane
before the first `noise_layers` convs ("multilayer noise": noise fed only once is forgotten
by deeper layers). Conv-BN-ReLU layers, then a conv to U, V with tanh scaled to the colour
space's range. The output is YUV with the input's Y unchanged.

Discriminator: YUV image -> stride-2 convs of 64, 128, 256, 512 channels (BatchNorm,
LeakyReLU 0.2) -> flatten -> (a hidden dense layer) -> one logit. Sizes must be multiples
of 16.

Both compute in `dtype` (models/layers.py); the generator's UV and the critic's logit leave
in float32, and the generator passes its input Y through in float32.
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from colorjax import color
from colorjax.models import layers

DISCRIMINATOR_FEATURES = (64, 128, 256, 512)


@dataclasses.dataclass(frozen=True)
class Layout:
  """What differs between the write-up's networks and the authors' release."""
  generator_features: tuple[int, ...]
  generator_kernels: tuple[int, ...]   # one per conv, the output conv last
  conv_bias: bool            # biases on convs followed by BatchNorm (TF1's conv2d keeps them)
  noise_batch_norm: bool     # noise plane through BatchNorm + ReLU
  noise_range: tuple[float, float]     # uniform noise in [low, high)
  discriminator_kernel: int
  discriminator_first_batch_norm: bool
  discriminator_hidden: int  # a dense layer of this width before the logit; 0: none
  dcgan_init: bool           # weights N(0, 0.02) (convs truncated at 2 std), biases 0
  yuv_space: str             # color.YUV_SPACES

  @property
  def space(self) -> color.YuvSpace:
    return color.YUV_SPACES[self.yuv_space]


LAYOUTS = {
    # The write-up: 3x3 convs of 130, 66, 65, 65, 33, BT.601 YUV, 4x4 discriminator.
    'writeup': Layout((130, 66, 65, 65, 33), (3,) * 6, conv_bias=False,
                      noise_batch_norm=False, noise_range=(0.0, 1.0), discriminator_kernel=4,
                      discriminator_first_batch_norm=True, discriminator_hidden=0,
                      dcgan_init=False, yuv_space='bt601'),
    # ccyyatnet/COLORGAN, wgan/model_wgan.py: 7x7 then 5x5 convs of 128, 64, 64, 64, 32, the
    # release's YCbCr scaled to [-1, 1], 5x5 discriminator with a dense 64 before the logit.
    # Not copied: the release keeps BatchNorm in training mode when it samples (batch
    # statistics at test time); here evaluation uses the running averages, as everywhere.
    'authors': Layout((128, 64, 64, 64, 32), (7, 5, 5, 5, 5, 5), conv_bias=True,
                      noise_batch_norm=True, noise_range=(-1.0, 1.0), discriminator_kernel=5,
                      discriminator_first_batch_norm=False, discriminator_hidden=64,
                      dcgan_init=True, yuv_space='scaled_ycbcr'),
}


def _check_size(height, width):
  if height % 16 or width % 16:
    raise ValueError(f'image size {height}x{width}: the YUV GAN needs multiples of 16')


def _init(layout, truncated=True):
  """DCGAN's initializers where the layout asks for them, else Flax's defaults."""
  if not layout.dcgan_init:
    return {}
  weights = (nn.initializers.truncated_normal(0.02) if truncated
             else nn.initializers.normal(0.02))
  return {'kernel_init': weights}


def _conv(layout, features, kernel, use_bias, dtype, stride=1):
  """SAME convolution (for the discriminator's even sizes, 4x4 stride 2 pads 1 each side)."""
  if kernel == 3 and stride == 1 and not layout.dcgan_init:
    return layers.Conv3x3(features, use_bias=use_bias, dtype=dtype)  # fast on CPU (layers.py)
  return nn.Conv(features, (kernel, kernel), strides=stride, padding='SAME',
                 use_bias=use_bias, dtype=dtype, **_init(layout))


class Generator(nn.Module):
  """(Y (N, H, W, 1), noise (N, noise_dim)) -> YUV (N, H, W, 3), in the layout's space."""
  noise_layers: int = 3   # 1: the authors' release; 3: the write-up
  noise_dim: int = 100
  layout: Layout = LAYOUTS['writeup']
  dtype: Any = jnp.float32

  def sample_noise(self, key, count):
    """The noise the generator was trained with: (count, noise_dim) uniform."""
    low, high = self.layout.noise_range
    return jax.random.uniform(key, (count, self.noise_dim), minval=low, maxval=high)

  @nn.compact
  def __call__(self, y_nhw1, noise_nd, train: bool = False):
    layout = self.layout
    n, h, w, _ = y_nhw1.shape
    _check_size(h, w)
    noise_plane = nn.Dense(h * w, dtype=self.dtype, **_init(layout, truncated=False))(noise_nd)
    noise_plane = noise_plane.reshape(n, h, w, 1)
    if layout.noise_batch_norm:
      noise_plane = nn.relu(layers.batch_norm(train, self.dtype)(noise_plane))
    y = x = y_nhw1.astype(self.dtype)
    hidden = zip(layout.generator_features, layout.generator_kernels)
    for i, (features, kernel) in enumerate(hidden):
      if i:
        x = jnp.concatenate([y, x], axis=-1)
      if i < self.noise_layers:
        x = jnp.concatenate([x, noise_plane], axis=-1)
      x = _conv(layout, features, kernel, layout.conv_bias, self.dtype)(x)
      x = nn.relu(layers.batch_norm(train, self.dtype)(x))
    x = _conv(layout, 2, layout.generator_kernels[-1], layout.conv_bias, self.dtype)(
        jnp.concatenate([y, x], axis=-1))
    uv = jnp.tanh(x.astype(jnp.float32)) * jnp.asarray(layout.space.uv_max, jnp.float32)
    return jnp.concatenate([y_nhw1.astype(jnp.float32), uv], axis=-1)


class Discriminator(nn.Module):
  """YUV (N, H, W, 3) -> one logit per image, (N,). `batch_norm=False` for WGAN-GP, whose
  per-sample gradient penalty is not defined through batch statistics."""
  batch_norm: bool = True
  layout: Layout = LAYOUTS['writeup']
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, yuv_nhw3, train: bool = False):
    layout = self.layout
    _check_size(*yuv_nhw3.shape[1:3])
    x = yuv_nhw3.astype(self.dtype)
    for i, features in enumerate(DISCRIMINATOR_FEATURES):
      normalized = self.batch_norm and (i or layout.discriminator_first_batch_norm)
      x = _conv(layout, features, layout.discriminator_kernel,
                use_bias=layout.conv_bias or not normalized, dtype=self.dtype, stride=2)(x)
      if normalized:
        x = layers.batch_norm(train, self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    x = x.reshape(x.shape[0], -1)
    dense = dict(dtype=self.dtype, **_init(layout, truncated=False))
    if layout.discriminator_hidden:  # linear: the release has no activation between the two
      x = nn.Dense(layout.discriminator_hidden, **dense)(x)
    return nn.Dense(1, **dense)(x)[:, 0].astype(jnp.float32)
