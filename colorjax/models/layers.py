"""Shared building blocks, and the one place where each convolution's formulation is chosen
per backend. Measured on XLA:CPU (jaxlib 0.10.2, 2 cores) per shape class the networks use:

- 3x3 NHWC, plain, strided or dilated, 1x1, and the GAN's 4x4 / 5x5 strided convs: XLA's own
  convolution (nn.Conv, `Conv3x3`) on every backend. Forward, input and kernel gradients each
  cost about the forward's time; the earlier one-matmul-per-tap kernel gradient is slower on
  this jaxlib (61 ms against 25 at 8x64x64, 64 -> 64) and is gone. XLA's Eigen convolutions
  beat the YNNPACK ones jaxlib picks by default: colorjax/xla_cpu.py.
- 3x3 at 1-6 channels (the tiny CNN of the normalization ablation), CPU: `conv3x3_taps`, a
  sum of Cin*Cout*9 scalar-times-plane products in NCHW that XLA fuses into one vectorized
  loop; its kernel gradient is one convolution with the whole image as its window
  (xla_cpu.kernel_gradient, in the form this jaxlib compiles well inside a lax.scan).
- Transposed convolutions (the U-Net's 2x2, the Zhang network's 4x4, stride 2), CPU:
  `conv_transpose_strided_grad`, whose kernel gradient is a strided convolution's (468 ms
  -> 13 ms for the Zhang network's, batch 8 at 64x64).
- 2x2 max-pool: `max_pool_2x2`, a max over a reshape (its gradient fuses).

On GPU every convolution stays lax's (cuDNN). Each formulation is tested against
lax.conv_general_dilated, gradients included (tests/models/test_layers.py).

Mixed precision: every layer takes a `dtype`, the dtype it computes in (float32, or bfloat16
with --config.compute_dtype, colorjax/precision.py); its parameters stay float32 (Flax's
param_dtype), so the optimizer updates float32 weights and a bf16 run's checkpoint is a
float32 run's.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from colorjax import xla_cpu


def _taps_forward(x_nchw, kernel_hwio):
  """Cross-correlation with SAME padding as an unrolled sum of shifted planes."""
  _, cin, h, w = x_nchw.shape
  padded = jnp.pad(x_nchw, ((0, 0), (0, 0), (1, 1), (1, 1)))
  taps = [(dy, dx, i, padded[:, i, dy:dy + h, dx:dx + w])
          for dy in range(3) for dx in range(3) for i in range(cin)]
  outputs = []
  for o in range(kernel_hwio.shape[-1]):
    terms = [kernel_hwio[dy, dx, i, o] * plane for dy, dx, i, plane in taps]
    outputs.append(functools.reduce(jnp.add, terms))
  return jnp.stack(outputs, axis=1)


@jax.custom_vjp
def conv3x3_taps(x_nchw, kernel_hwio):
  """3x3 SAME cross-correlation, NCHW input, HWIO kernel, no bias."""
  return _taps_forward(x_nchw, kernel_hwio)


def _taps_fwd(x_nchw, kernel_hwio):
  return _taps_forward(x_nchw, kernel_hwio), (x_nchw, kernel_hwio)


def _taps_kernel_gradient(x_nchw, grad_nchw):
  """d(sum of conv3x3_taps(x, k) * grad) / dk (3, 3, cin, cout), as one convolution whose
  window is the whole image (xla_cpu.kernel_gradient), in the form this jaxlib compiles as a
  convolution inside the ablation's lax.scan (xla_cpu.fuses_convolutions_in_loops)."""
  padded = jnp.pad(x_nchw, ((0, 0), (0, 0), (1, 1), (1, 1)))
  return xla_cpu.kernel_gradient(padded, grad_nchw, xla_cpu.fuses_convolutions_in_loops())


def _taps_bwd(residuals, grad_nchw):
  x_nchw, kernel_hwio = residuals
  flipped = jnp.flip(kernel_hwio, (0, 1)).swapaxes(2, 3)
  return _taps_forward(grad_nchw, flipped), _taps_kernel_gradient(x_nchw, grad_nchw)


conv3x3_taps.defvjp(_taps_fwd, _taps_bwd)


def _xla_conv_nhwc(x_nhwc, kernel_hwio):
  return jax.lax.conv_general_dilated(
      x_nhwc, kernel_hwio, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _lax_conv_transpose(x_nhwc, kernel_hwio, strides, padding):
  return jax.lax.conv_transpose(x_nhwc, kernel_hwio, strides, padding,
                                dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _transpose_padding(kernel, stride, padding):
  """The (low, high) padding lax.conv_transpose gives the dilated input for 'SAME' / 'VALID'."""
  length = kernel + stride - 2 + (max(kernel - stride, 0) if padding == 'VALID' else 0)
  low = kernel - 1 if padding == 'VALID' or stride > kernel - 1 else -(-length // 2)
  return low, length - low


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose_strided_grad(x_nhwc, kernel_hwio, strides, padding):
  """lax.conv_transpose (NHWC, HWIO, no kernel transpose: nn.ConvTranspose's), whose kernel
  gradient is that of a strided convolution instead of XLA's own.

  The transposed convolution is a convolution of the stride-dilated input; XLA:CPU derives
  its kernel gradient as a convolution over that mostly-zero input (468 ms for the Zhang
  network's 4x4 stride-2 512 -> 256 at 8x8, batch 8; the forward takes 12 ms). The same
  numbers are the kernel gradient of a strided convolution of the output gradient with the
  input as its cotangent: dW[a] = sum_i x[i] g[s*i + lo - a] is dV[k-1-a] of
  z = conv(g, V, stride s, padding (k-1-lo, ...)), which XLA computes at the forward's cost.
  """
  return _lax_conv_transpose(x_nhwc, kernel_hwio, strides, padding)


def _transpose_fwd(x_nhwc, kernel_hwio, strides, padding):
  return _lax_conv_transpose(x_nhwc, kernel_hwio, strides, padding), (x_nhwc, kernel_hwio)


def _transpose_bwd(strides, padding, residuals, grad_nhwc):
  x_nhwc, kernel_hwio = residuals
  _, input_vjp = jax.vjp(lambda x: _lax_conv_transpose(x, kernel_hwio, strides, padding),
                         x_nhwc)
  (grad_x,) = input_vjp(grad_nhwc)
  kernel_size = kernel_hwio.shape[:2]
  if isinstance(padding, str):
    padding = [_transpose_padding(k, s, padding) for k, s in zip(kernel_size, strides)]
  strided_padding = []
  for k, s, (low, _), size_x, size_g in zip(kernel_size, strides, padding, x_nhwc.shape[1:3],
                                            grad_nhwc.shape[1:3]):
    strided_low = k - 1 - low
    strided_padding.append((strided_low, s * (size_x - 1) + k - size_g - strided_low))
  swapped = jnp.zeros((*kernel_size, kernel_hwio.shape[3], kernel_hwio.shape[2]),
                      kernel_hwio.dtype)
  _, kernel_vjp = jax.vjp(lambda v: jax.lax.conv_general_dilated(
      grad_nhwc, v, strides, strided_padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC')),
                          swapped)
  (grad_swapped,) = kernel_vjp(x_nhwc)
  return grad_x, jnp.flip(grad_swapped, (0, 1)).swapaxes(2, 3)


conv_transpose_strided_grad.defvjp(_transpose_fwd, _transpose_bwd)


def conv_transpose(x_nhwc, kernel_hwio, strides, padding):
  """nn.ConvTranspose's transposed convolution in the formulation fastest on this backend."""
  if jax.default_backend() == 'cpu':
    return conv_transpose_strided_grad(x_nhwc, kernel_hwio, tuple(strides), padding)
  return _lax_conv_transpose(x_nhwc, kernel_hwio, strides, padding)


def use_taps_by_default():
  """The taps formulation wins on CPU only; accelerators keep the library convolution."""
  return jax.default_backend() == 'cpu'


class Conv3x3(nn.Module):
  """3x3 SAME convolution; NCHW (taps formulation) or NHWC (XLA's). Parameters as
  nn.Conv's: 'kernel' (HWIO) and, with use_bias, 'bias', float32; input, kernel and bias are
  cast to `dtype` as nn.Conv casts them."""
  features: int
  channels_first: bool = False
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    in_features = x.shape[1] if self.channels_first else x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, in_features, self.features))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    y = conv3x3_taps(x, kernel) if self.channels_first else _xla_conv_nhwc(x, kernel)
    if not self.use_bias:
      return y
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,)).astype(self.dtype)
    return y + (bias[:, None, None] if self.channels_first else bias)


class ConvTranspose(nn.Module):
  """nn.ConvTranspose (2-D, NHWC; the same parameters, names and initializers, so
  checkpoints and the released-weight importer see no difference) computed by
  `conv_transpose`. `padding`: 'SAME', 'VALID' or ((low, high), (low, high))."""
  features: int
  kernel_size: tuple
  strides: tuple = (1, 1)
  padding: Any = 'SAME'
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (*self.kernel_size, x.shape[-1], self.features))
    padding = self.padding if isinstance(self.padding, str) else tuple(map(tuple, self.padding))
    y = conv_transpose(x.astype(self.dtype), kernel.astype(self.dtype), self.strides, padding)
    if not self.use_bias:
      return y
    return y + self.param('bias', nn.initializers.zeros_init(), (self.features,)).astype(
        self.dtype)


def max_pool_2x2(x_nhwc):
  """2x2 max-pool, stride 2 (even sides), as a max over a reshape: its gradient is an
  elementwise mask that XLA fuses, where nn.max_pool's is a select-and-scatter (8.0 ms
  against 1.4 ms at 16x64x64x16 on XLA:CPU). The gradient of a tie is shared between the
  tied inputs, where select-and-scatter gives it to the first; the U-Net pools ReLU outputs,
  whose ties are at 0, where the ReLU passes no gradient either way."""
  n, h, w, c = x_nhwc.shape
  return x_nhwc.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class Dropout(nn.Module):
  """nn.Dropout from 16-bit uniforms, two per 32-bit random draw: half nn.Dropout's threefry
  work, the largest elementwise cost of the U-Net's step on XLA:CPU (8.8 -> 3.4 ms at
  16x64x64x32). The keep probability is rounded to 1/65536 (0.9: 58982/65536) and kept
  values are divided by that rounded probability, so the expected output is the input."""
  rate: float
  deterministic: bool = False

  @nn.compact
  def __call__(self, x):
    if self.deterministic or self.rate == 0:
      return x
    threshold = round((1 - self.rate) * 65536)
    if threshold == 0:
      return jnp.zeros_like(x)
    bits = jax.random.bits(self.make_rng('dropout'), (-(-x.size // 2),), jnp.uint32)
    uniform16 = jnp.concatenate([bits & 0xFFFF, bits >> 16])[:x.size].reshape(x.shape)
    return jnp.where(uniform16 < threshold, x / (threshold / 65536), 0).astype(x.dtype)


def batch_norm(train: bool, dtype=jnp.float32, name=None) -> nn.BatchNorm:
  """BatchNorm as every family uses it: momentum 0.9, epsilon 1e-5, normalized output in
  `dtype`. The batch mean and variance, the running averages, scale and bias are float32 in
  any case (force_float32_reductions, Flax's default, stated because the running statistics
  depend on it): a bf16 sum over a batch keeps 8 bits of the mean, and eval uses the averages."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      force_float32_reductions=True, name=name)
