"""Shared building blocks: 3x3 convolutions with formulations that are fast on CPU.

XLA's CPU convolutions are weak at 1-6 channels (the tiny CNN of the normalization
ablation). `conv3x3_taps` writes the convolution as a sum of Cin*Cout*9 scalar-times-plane
products in NCHW, which XLA fuses into one vectorized loop per layer; its backward pass
reuses that form for the input gradient (a convolution with the flipped, transposed kernel)
and XLA's filter-gradient convolution for the kernel gradient. On a 2-core CPU this takes the
tiny CNN's training step at 400x600 from ~160 ms (nn.Conv) to ~20 ms.

At many channels XLA:CPU's forward convolution is fine but its filter gradient is not (6x
the forward's time at 132 -> 66 channels). `conv3x3_nhwc` keeps XLA's forward and input
gradient and computes the kernel gradient as 9 matmuls, one per tap (2.4x faster).

On GPU, cuDNN is faster than either, so `Conv3x3` picks the formulation by backend; all hold
the same parameters.

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


def _xla_conv_nchw(x_nchw, kernel_hwio):
  return jax.lax.conv_general_dilated(
      x_nchw, kernel_hwio, (1, 1), 'SAME', dimension_numbers=('NCHW', 'HWIO', 'NCHW'))


@jax.custom_vjp
def conv3x3_taps(x_nchw, kernel_hwio):
  """3x3 SAME cross-correlation, NCHW input, HWIO kernel, no bias."""
  return _taps_forward(x_nchw, kernel_hwio)


def _taps_fwd(x_nchw, kernel_hwio):
  return _taps_forward(x_nchw, kernel_hwio), (x_nchw, kernel_hwio)


def _taps_bwd(residuals, grad_nchw):
  x_nchw, kernel_hwio = residuals
  flipped = jnp.flip(kernel_hwio, (0, 1)).swapaxes(2, 3)
  grad_x = _taps_forward(grad_nchw, flipped)
  _, kernel_vjp = jax.vjp(lambda k: _xla_conv_nchw(x_nchw, k), kernel_hwio)
  (grad_kernel,) = kernel_vjp(grad_nchw)
  return grad_x, grad_kernel


conv3x3_taps.defvjp(_taps_fwd, _taps_bwd)


def _xla_conv_nhwc(x_nhwc, kernel_hwio):
  return jax.lax.conv_general_dilated(
      x_nhwc, kernel_hwio, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@jax.custom_vjp
def conv3x3_tap_matmul_grad(x_nhwc, kernel_hwio):
  """3x3 SAME cross-correlation, NHWC; its kernel gradient is one matmul per tap."""
  return _xla_conv_nhwc(x_nhwc, kernel_hwio)


def _tap_matmul_fwd(x_nhwc, kernel_hwio):
  return _xla_conv_nhwc(x_nhwc, kernel_hwio), (x_nhwc, kernel_hwio)


def _tap_matmul_bwd(residuals, grad_nhwc):
  x_nhwc, kernel_hwio = residuals
  _, input_vjp = jax.vjp(lambda x: _xla_conv_nhwc(x, kernel_hwio), x_nhwc)
  (grad_x,) = input_vjp(grad_nhwc)
  h, w = x_nhwc.shape[1:3]
  padded = jnp.pad(x_nhwc, ((0, 0), (1, 1), (1, 1), (0, 0)))
  grad_kernel = jnp.stack([
      jnp.stack([jnp.einsum('nhwi,nhwo->io', padded[:, dy:dy + h, dx:dx + w], grad_nhwc)
                 for dx in range(3)])
      for dy in range(3)])
  return grad_x, grad_kernel


conv3x3_tap_matmul_grad.defvjp(_tap_matmul_fwd, _tap_matmul_bwd)


def conv3x3_nhwc(x_nhwc, kernel_hwio):
  """3x3 SAME cross-correlation, NHWC, in the formulation fastest on this backend."""
  if jax.default_backend() == 'cpu':
    return conv3x3_tap_matmul_grad(x_nhwc, kernel_hwio)
  return _xla_conv_nhwc(x_nhwc, kernel_hwio)


def use_taps_by_default():
  """The taps formulation wins on CPU only; accelerators keep the library convolution."""
  return jax.default_backend() == 'cpu'


class Conv3x3(nn.Module):
  """3x3 SAME convolution; NCHW (taps formulation) or NHWC (conv3x3_nhwc). Parameters as
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
    y = conv3x3_taps(x, kernel) if self.channels_first else conv3x3_nhwc(x, kernel)
    if not self.use_bias:
      return y
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,)).astype(self.dtype)
    return y + (bias[:, None, None] if self.channels_first else bias)


def batch_norm(train: bool, dtype=jnp.float32, name=None) -> nn.BatchNorm:
  """BatchNorm as every family uses it: momentum 0.9, epsilon 1e-5, normalized output in
  `dtype`. The batch mean and variance, the running averages, scale and bias are float32 in
  any case (force_float32_reductions, Flax's default, stated because the running statistics
  depend on it): a bf16 sum over a batch keeps 8 bits of the mean, and eval uses the averages."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                      force_float32_reductions=True, name=name)
