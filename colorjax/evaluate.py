"""Metrics on RGB reconstructions, RGB as float in [0, 1], images (..., H, W, 3)."""

import jax.numpy as jnp


def squared_distance(rgb_pred, rgb_true):
  """Sum over pixels and channels of squared RGB differences: the ablation write-up's
  'distance'. Reduces the last three axes, keeping any leading (run, batch) axes."""
  return jnp.sum((rgb_pred - rgb_true) ** 2, axis=(-3, -2, -1))


def psnr(rgb_pred, rgb_true, max_value=1.0):
  """Peak signal-to-noise ratio in dB over the last three axes."""
  mse = jnp.mean((rgb_pred - rgb_true) ** 2, axis=(-3, -2, -1))
  return 10.0 * jnp.log10(max_value ** 2 / mse)
