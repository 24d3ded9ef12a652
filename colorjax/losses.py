"""Losses, each built as loss_fn(params, batch_stats, batch, key) -> (loss, (metrics, batch_stats)).

That signature is what train.make_train_step differentiates. Colour conversion happens here,
on device, from the uint8 RGB the input pipeline ships (DESIGN.md, data flow).
"""

import jax
import jax.numpy as jnp

from colorjax import color, quantize


def lab_from_uint8(rgb_uint8):
  """uint8 RGB as the pipeline ships it -> Lab, float32."""
  return color.rgb_to_lab(rgb_uint8.astype(jnp.float32) / 255.0)


def split_lab(rgb_uint8, norm: color.LabNorm):
  """uint8 RGB -> normalized (L, ab), NHWC with 1 and 2 channels."""
  lab = norm.normalize(lab_from_uint8(rgb_uint8))
  return lab[..., :1], lab[..., 1:]


def _apply_training(model, params, batch_stats, model_input, key):
  """The model in training mode: (output, updated batch_stats)."""
  output, updates = model.apply(
      {'params': params, 'batch_stats': batch_stats}, model_input, train=True,
      mutable=['batch_stats'], rngs={'dropout': key})
  return output, updates.get('batch_stats', batch_stats)


def colour_weight(lab, threshold):
  """Per example (leading axis): 1 if any pixel has |a| or |b| above `threshold` (Lab
  units), else 0, so nearly gray images teach nothing."""
  chroma = jnp.max(jnp.abs(lab[..., 1:]), axis=tuple(range(1, lab.ndim)))
  return (chroma > threshold).astype(jnp.float32)


def ab_regression(model, norm: color.LabNorm, gray_threshold=None):
  """MSE between predicted and true ab, both in the normalization's own units. With a
  `gray_threshold`, nearly gray images get weight 0 (colour_weight)."""

  def loss_fn(params, batch_stats, batch, key):
    lab = lab_from_uint8(batch['rgb'])
    normalized = norm.normalize(lab)
    l_in, ab_true = normalized[..., :1], normalized[..., 1:]
    ab_pred, batch_stats = _apply_training(model, params, batch_stats, l_in, key)
    squared = (ab_pred - ab_true) ** 2
    if gray_threshold is None:
      loss = jnp.mean(squared)
    else:
      weight = colour_weight(lab, gray_threshold)
      per_example = jnp.mean(squared, axis=tuple(range(1, squared.ndim)))
      loss = jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1.0)
    return loss, ({}, batch_stats)

  return loss_fn


def _model_at_quarter(model, params, batch_stats, batch, key):
  """Lab of the batch, the model's output from L, and the true ab at the output's 1/4
  resolution (every 4th pixel, as Zhang et al.'s released training code subsamples)."""
  lab = lab_from_uint8(batch['rgb'])
  output, batch_stats = _apply_training(model, params, batch_stats, lab[..., :1], key)
  return lab, output, lab[:, ::4, ::4, 1:], batch_stats


def rebalanced_soft_cross_entropy(model, bins, class_weights, gray_threshold=5.0,
                                  neighbours=10, sigma=5.0):
  """Zhang et al.'s classification loss: cross-entropy against soft-encoded ab targets at 1/4
  resolution, each pixel weighted by the rebalancing weight of its target's most likely bin;
  images without colour weigh 0."""
  class_weights = jnp.asarray(class_weights, jnp.float32)

  def loss_fn(params, batch_stats, batch, key):
    lab, logits, ab_quarter, batch_stats = _model_at_quarter(model, params, batch_stats,
                                                             batch, key)
    target = quantize.soft_encode(ab_quarter, bins, neighbours, sigma)
    pixel_weight = (class_weights[jnp.argmax(target, axis=-1)]
                    * colour_weight(lab, gray_threshold)[:, None, None])
    cross_entropy = -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return jnp.mean(pixel_weight * cross_entropy), ({}, batch_stats)

  return loss_fn


def quarter_ab_regression(model, gray_threshold=5.0):
  """The regression baseline on the same network: MSE on ab (Lab units) at 1/4 resolution;
  images without colour weigh 0."""

  def loss_fn(params, batch_stats, batch, key):
    lab, ab_pred, ab_quarter, batch_stats = _model_at_quarter(model, params, batch_stats,
                                                              batch, key)
    squared = jnp.sum((ab_pred - ab_quarter) ** 2, axis=-1)
    return jnp.mean(colour_weight(lab, gray_threshold)[:, None, None] * squared), ({},
                                                                                  batch_stats)

  return loss_fn
