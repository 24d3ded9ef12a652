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


def ab_regression(model, norm: color.LabNorm):
  """MSE between predicted and true ab, both in the normalization's own units."""

  def loss_fn(params, batch_stats, batch, key):
    l_in, ab_true = split_lab(batch['rgb'], norm)
    ab_pred, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, l_in, train=True,
        mutable=['batch_stats'], rngs={'dropout': key})
    loss = jnp.mean((ab_pred - ab_true) ** 2)
    return loss, ({}, updates.get('batch_stats', batch_stats))

  return loss_fn
