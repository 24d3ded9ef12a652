"""Losses, each built as loss_fn(params, batch_stats, batch, key) -> (loss, (metrics, batch_stats)).

That signature is what train.make_train_step differentiates; a GAN's two losses take the other
network's variables as well (programs/yuv_gan.gan_train_step). Colour conversion happens
here, on device, from the uint8 RGB the input pipeline ships (docs/DESIGN.md, data flow).
"""

import jax
import jax.numpy as jnp
import optax

from colorjax import color, quantize


def _apply_training(model, params, batch_stats, *model_inputs, key):
  """The model in training mode: (output, updated batch_stats)."""
  output, updates = model.apply(
      {'params': params, 'batch_stats': batch_stats}, *model_inputs, train=True,
      mutable=['batch_stats'], rngs={'dropout': key})
  return output, updates.get('batch_stats', batch_stats)


def lab_of(batch):
  """The batch's images in Lab: converted here from its uint8 'rgb', or given as 'lab' by a
  caller that converts once what every step reads (the ablation's one photo)."""
  return batch['lab'] if 'lab' in batch else color.lab_from_uint8(batch['rgb'])


def color_weight(lab, threshold):
  """Per example (leading axis): 1 if any pixel has |a| or |b| above `threshold` (Lab
  units), else 0, so nearly gray images teach nothing."""
  chroma = jnp.max(jnp.abs(lab[..., 1:]), axis=tuple(range(1, lab.ndim)))
  return (chroma > threshold).astype(jnp.float32)


ERRORS = {'squared': jnp.square, 'absolute': jnp.abs}  # MSE or MAE


def _mean_over_color_images(error, lab, gray_threshold):
  """Mean of a per-pixel error; with a `gray_threshold`, over the images with colour only."""
  if gray_threshold is None:
    return jnp.mean(error)
  weight = color_weight(lab, gray_threshold)
  per_example = jnp.mean(error, axis=tuple(range(1, error.ndim)))
  return jnp.sum(weight * per_example) / jnp.maximum(jnp.sum(weight), 1.0)


def ab_regression(model, norm: color.LabNorm, gray_threshold=None, error='squared'):
  """Mean squared (or absolute) error between predicted and true ab, both in the
  normalization's own units, from the normalized L. With a `gray_threshold`, nearly gray
  images get weight 0 (color_weight)."""

  def loss_fn(params, batch_stats, batch, key):
    lab = lab_of(batch)
    normalized = norm.normalize(lab)
    ab_pred, batch_stats = _apply_training(model, params, batch_stats, normalized[..., :1],
                                           key=key)
    loss = _mean_over_color_images(ERRORS[error](ab_pred - normalized[..., 1:]), lab,
                                    gray_threshold)
    return loss, ({}, batch_stats)

  return loss_fn


def rgb_regression(model, norm: color.LabNorm, gray_threshold=None, error='absolute'):
  """Gray -> RGB: mean absolute (or squared) error on RGB in [0, 1], from the normalized L."""

  def loss_fn(params, batch_stats, batch, key):
    lab = color.lab_from_uint8(batch['rgb'])
    rgb_pred, batch_stats = _apply_training(model, params, batch_stats,
                                            norm.normalize(lab)[..., :1], key=key)
    rgb_true = batch['rgb'].astype(jnp.float32) / 255.0
    return _mean_over_color_images(ERRORS[error](rgb_pred - rgb_true), lab,
                                    gray_threshold), ({}, batch_stats)

  return loss_fn


def classification(model, norm: color.LabNorm):
  """Softmax cross-entropy of the class logits the model gives for the normalized L; the
  metric 'accuracy' is the top-1 share of the batch."""

  def loss_fn(params, batch_stats, batch, key):
    l_in = norm.normalize(color.lab_from_uint8(batch['rgb']))[..., :1]
    logits, batch_stats = _apply_training(model, params, batch_stats, l_in, key=key)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']))
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == batch['label'])
    return loss, ({'accuracy': accuracy}, batch_stats)

  return loss_fn


def _model_at_quarter(model, params, batch_stats, batch, key, gray_threshold):
  """The model's output from L, the true ab at the output's 1/4 resolution (every 4th
  pixel, as Zhang et al.'s released training code subsamples) and each image's colour
  weight, judged on that subsampled ab as the release's NonGrayMaskLayer judges it: an
  image whose colour the loss never sees teaches nothing."""
  lab = color.lab_from_uint8(batch['rgb'])
  output, batch_stats = _apply_training(model, params, batch_stats, lab[..., :1], key=key)
  lab_quarter = lab[:, ::4, ::4]
  return (output, lab_quarter[..., 1:], color_weight(lab_quarter, gray_threshold)[:, None, None],
          batch_stats)


def rebalanced_soft_cross_entropy(model, bins, class_weights, gray_threshold=5.0,
                                  neighbours=10, sigma=5.0):
  """Zhang et al.'s classification loss: cross-entropy against soft-encoded ab targets at 1/4
  resolution, each pixel weighted by the rebalancing weight of its target's most likely bin;
  images without colour weigh 0."""
  class_weights = jnp.asarray(class_weights, jnp.float32)

  def loss_fn(params, batch_stats, batch, key):
    logits, ab_quarter, image_weight, batch_stats = _model_at_quarter(
        model, params, batch_stats, batch, key, gray_threshold)
    target = quantize.soft_encode(ab_quarter, bins, neighbours, sigma)
    pixel_weight = class_weights[jnp.argmax(target, axis=-1)] * image_weight
    cross_entropy = -jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return jnp.mean(pixel_weight * cross_entropy), ({}, batch_stats)

  return loss_fn


def quarter_ab_regression(model, gray_threshold=5.0):
  """The regression baseline on the same network: MSE on ab (Lab units) at 1/4 resolution;
  images without colour weigh 0."""

  def loss_fn(params, batch_stats, batch, key):
    ab_pred, ab_quarter, image_weight, batch_stats = _model_at_quarter(
        model, params, batch_stats, batch, key, gray_threshold)
    squared = jnp.sum((ab_pred - ab_quarter) ** 2, axis=-1)
    return jnp.mean(image_weight * squared), ({}, batch_stats)

  return loss_fn


# Adversarial objectives on logits: name -> (critic loss(real, fake), generator loss(fake)).
# 'bce' is the non-saturating GAN (the generator maximizes log D(fake)); 'wgan' and 'wgan_gp'
# share the Wasserstein objective and differ in how the critic is kept Lipschitz (weight
# clipping in the step, or gradient_penalty).
ADVERSARIAL = {
    'bce': (lambda real, fake: jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake)),
            lambda fake: jnp.mean(jax.nn.softplus(-fake))),
    'wgan': (lambda real, fake: jnp.mean(fake) - jnp.mean(real), lambda fake: -jnp.mean(fake)),
}
ADVERSARIAL['wgan_gp'] = ADVERSARIAL['wgan']


def gradient_penalty(critic, real, fake, key):
  """Gulrajani et al. 2017: mean over examples of (|d critic / d x| - 1)^2 at random points
  x on the segments between real and fake examples. `critic` maps a batch to one score per
  example, each depending on its own example only."""
  mix = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
  points = mix * real + (1.0 - mix) * fake
  grads = jax.grad(lambda x: jnp.sum(critic(x)))(points)
  norms = jnp.sqrt(jnp.sum(grads ** 2, axis=tuple(range(1, grads.ndim))) + 1e-12)
  return jnp.mean((norms - 1.0) ** 2)


def yuv_gan(generator, discriminator, adversarial='bce', l1_weight=0.0, gp_weight=10.0):
  """The conditional YUV GAN's (critic_loss_fn, generator_loss_fn).

  Both are (params, batch_stats, other_variables, batch, key) -> (loss, (metrics,
  batch_stats)), where other_variables are the other network's {'params', 'batch_stats'}.
  Images are in the generator layout's YUV space; the generator sees their Y and its own
  noise (Generator.sample_noise); its loss adds `l1_weight` x mean |UV - true UV|. The critic
  compares real YUV with the generator's (held fixed) samples.
  """
  if adversarial not in ADVERSARIAL:
    raise ValueError(f'adversarial loss {adversarial!r}: use one of {sorted(ADVERSARIAL)}')
  critic_objective, generator_objective = ADVERSARIAL[adversarial]

  def to_yuv(rgb_uint8):
    return generator.layout.space.encode(rgb_uint8.astype(jnp.float32) / 255.0)

  def sample(g_params, g_stats, yuv, key):
    noise_key, dropout_key = jax.random.split(key)
    noise = generator.sample_noise(noise_key, yuv.shape[0])
    return _apply_training(generator, g_params, g_stats, yuv[..., :1], noise, key=dropout_key)

  def critic_loss_fn(params, batch_stats, g_variables, batch, key):
    sample_key, penalty_key = jax.random.split(key)
    real = to_yuv(batch['rgb'])
    fake, _ = sample(g_variables['params'], g_variables['batch_stats'], real, sample_key)
    fake = jax.lax.stop_gradient(fake)
    # Real and fake in separate passes, so BatchNorm never mixes them in one batch (DCGAN).
    real_logits, batch_stats = _apply_training(discriminator, params, batch_stats, real, key=key)
    fake_logits, batch_stats = _apply_training(discriminator, params, batch_stats, fake, key=key)
    loss = critic_objective(real_logits, fake_logits)
    metrics = {'d_real': jnp.mean(real_logits), 'd_fake': jnp.mean(fake_logits)}
    if adversarial == 'wgan_gp':
      critic = lambda x: discriminator.apply({'params': params, 'batch_stats': batch_stats}, x)
      metrics['gradient_penalty'] = gradient_penalty(critic, real, fake, penalty_key)
      loss += gp_weight * metrics['gradient_penalty']
    return loss, (metrics, batch_stats)

  def generator_loss_fn(params, batch_stats, d_variables, batch, key):
    real = to_yuv(batch['rgb'])
    fake, batch_stats = sample(params, batch_stats, real, key)
    logits, _ = _apply_training(discriminator, d_variables['params'], d_variables['batch_stats'],
                                fake, key=key)
    loss = generator_objective(logits)
    metrics = {}
    if l1_weight:
      metrics['l1'] = jnp.mean(jnp.abs(fake[..., 1:] - real[..., 1:]))
      loss += l1_weight * metrics['l1']
    return loss, (metrics, batch_stats)

  return critic_loss_fn, generator_loss_fn
