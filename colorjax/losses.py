"""Losses, each built as loss_fn(params, batch_stats, batch, key) -> (loss, (metrics, batch_stats)).

That signature is what train.make_train_step differentiates. Colour conversion happens here,
on device, from the uint8 RGB the input pipeline ships (DESIGN.md, data flow).
"""

import jax.numpy as jnp

from colorjax import color


def rgb_uint8_to_float(rgb_uint8):
  return rgb_uint8.astype(jnp.float32) / 255.0


def split_lab(rgb_uint8, norm: color.LabNorm):
  """uint8 RGB -> normalized (L, ab), NHWC with 1 and 2 channels."""
  lab = norm.normalize(color.rgb_to_lab(rgb_uint8_to_float(rgb_uint8)))
  return lab[..., :1], lab[..., 1:]


def colour_weight(lab, threshold):
  """Per example (leading axis): 1 if any pixel has |a| or |b| above `threshold` (Lab
  units), else 0, so nearly gray images teach nothing."""
  chroma = jnp.max(jnp.abs(lab[..., 1:]), axis=tuple(range(1, lab.ndim)))
  return (chroma > threshold).astype(jnp.float32)


def ab_regression(model, norm: color.LabNorm, gray_threshold=None):
  """MSE between predicted and true ab, both in the normalization's own units. With a
  `gray_threshold`, nearly gray images get weight 0 (colour_weight)."""

  def loss_fn(params, batch_stats, batch, key):
    lab = color.rgb_to_lab(rgb_uint8_to_float(batch['rgb']))
    normalized = norm.normalize(lab)
    l_in, ab_true = normalized[..., :1], normalized[..., 1:]
    ab_pred, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, l_in, train=True,
        mutable=['batch_stats'], rngs={'dropout': key})
    squared = (ab_pred - ab_true) ** 2
    if gray_threshold is None:
      loss = jnp.mean(squared)
    else:
      weight = colour_weight(lab, gray_threshold)
      per_example = jnp.mean(squared, axis=tuple(range(1, squared.ndim)))
      loss = jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1.0)
    return loss, ({}, updates.get('batch_stats', batch_stats))

  return loss_fn
