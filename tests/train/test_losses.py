"""Loss pieces against hand-computed cases."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color
from colorjax.models.tiny_cnn import TinyCNN
from colorjax.train import losses


def test_color_weight_hand_computed():
  lab = np.zeros((3, 2, 2, 3), np.float32)
  lab[1, 0, 1, 1] = 5.0    # |a| = 5: not above the threshold, still gray
  lab[2, 1, 0, 2] = -5.5   # |b| = 5.5: colour
  np.testing.assert_array_equal(losses.color_weight(jnp.asarray(lab), 5.0), [0, 0, 1])


def test_gray_images_carry_no_weight_in_ab_regression():
  rng = np.random.default_rng(0)
  colourful = rng.integers(0, 256, (1, 8, 8, 3), np.uint8)
  gray = np.repeat(rng.integers(0, 256, (1, 8, 8, 1), np.uint8), 3, axis=-1)
  model = TinyCNN(channels=3)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))['params']
  key = jax.random.PRNGKey(1)
  norm = color.NORMALIZATIONS['unit']
  weighted = jax.jit(losses.ab_regression(model, norm, gray_threshold=5.0))
  plain = jax.jit(losses.ab_regression(model, norm))
  both = {'rgb': np.concatenate([colourful, gray])}
  only_color = {'rgb': colourful}
  np.testing.assert_allclose(weighted(params, {}, both, key)[0],
                             plain(params, {}, only_color, key)[0], rtol=1e-6)
  # without the threshold the gray image counts, and changes the loss
  assert abs(float(plain(params, {}, both, key)[0]) -
             float(plain(params, {}, only_color, key)[0])) > 1e-6


class _FixedLogits:
  """A stand-in model whose output is given: isolates the loss arithmetic."""

  def __init__(self, output):
    self.output = output

  def apply(self, variables, l_in, train, mutable, rngs):
    return self.output, {'batch_stats': {}}


def _gray_with_one_colored_pixel(rng, row, col):
  image = np.repeat(rng.integers(0, 256, (8, 8, 1), np.uint8), 3, axis=-1)
  image[row, col] = (255, 0, 0)
  return image


def test_rebalanced_soft_cross_entropy_matches_numpy_reference():
  """Three images: random colour; gray but for a red pixel at (1, 1), which the 1/4-
  resolution targets never sample; gray but for a red pixel at (4, 4), which they do. Each
  image's weight is read from the subsampled ab, as the loss sees it (scikit-image's Lab
  here), so the second must weigh 0 and the third 1."""
  rng = np.random.default_rng(4)
  bins = np.asarray([[0, 0], [10, 0], [0, 10], [-10, 0], [0, -10]], np.float32)
  class_weights = np.asarray([0.5, 1.0, 1.5, 2.0, 2.5], np.float32)
  rgb = np.stack([rng.integers(0, 256, (8, 8, 3), np.uint8),
                  _gray_with_one_colored_pixel(rng, 1, 1),
                  _gray_with_one_colored_pixel(rng, 4, 4)])
  logits = rng.normal(0, 1, (3, 2, 2, 5)).astype(np.float32)
  loss_fn = losses.rebalanced_soft_cross_entropy(_FixedLogits(jnp.asarray(logits)), bins,
                                                 class_weights, neighbours=2, sigma=5.0)
  ours = float(loss_fn(None, {}, {'rgb': rgb}, None)[0])

  import skimage.color
  ab = skimage.color.rgb2lab(rgb / 255.0)[:, ::4, ::4, 1:]
  image_weight = (np.abs(ab).max(axis=(1, 2, 3)) > 5.0).astype(float)
  np.testing.assert_array_equal(image_weight, [1, 0, 1])
  total = 0.0
  for n, i, j in np.ndindex(3, 2, 2):
    d2 = ((bins - ab[n, i, j]) ** 2).sum(-1)
    nearest = np.argsort(d2)[:2]
    target = np.zeros(5)
    target[nearest] = np.exp(-(d2[nearest] - d2.min()) / 50)
    target /= target.sum()
    log_p = logits[n, i, j] - np.log(np.exp(logits[n, i, j]).sum())
    total += image_weight[n] * class_weights[np.argmax(target)] * -(target * log_p).sum()
  np.testing.assert_allclose(ours, total / 12, rtol=1e-4)


def test_adversarial_objectives_hand_computed():
  real, fake = jnp.asarray([2.0, -1.0]), jnp.asarray([0.5, -3.0])
  sigmoid = lambda x: 1 / (1 + np.exp(-np.asarray(x)))
  critic, generator = losses.ADVERSARIAL['bce']
  # BCE: -log D(real) - log(1 - D(fake)); the non-saturating generator: -log D(fake).
  expected = np.mean(-np.log(sigmoid(real))) + np.mean(-np.log(1 - sigmoid(fake)))
  np.testing.assert_allclose(critic(real, fake), expected, rtol=1e-6)
  np.testing.assert_allclose(generator(fake), np.mean(-np.log(sigmoid(fake))), rtol=1e-6)
  critic, generator = losses.ADVERSARIAL['wgan']
  np.testing.assert_allclose(critic(real, fake), (0.5 - 3.0) / 2 - (2.0 - 1.0) / 2, rtol=1e-6)
  np.testing.assert_allclose(generator(fake), 1.25, rtol=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
  """D(x) = <w, x> has gradient w everywhere: the penalty is (|w| - 1)^2 wherever it looks."""
  w = jnp.asarray(np.random.default_rng(0).normal(size=(4, 4, 3)), jnp.float32)
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real, fake = jnp.ones((5, 4, 4, 3)), jnp.zeros((5, 4, 4, 3))
  penalty = losses.gradient_penalty(critic, real, fake, jax.random.PRNGKey(0))
  np.testing.assert_allclose(penalty, (np.linalg.norm(w) - 1) ** 2, rtol=1e-5)
  unit = w / jnp.linalg.norm(w)
  assert float(losses.gradient_penalty(lambda x: jnp.sum(x * unit, axis=(1, 2, 3)), real, fake,
                                       jax.random.PRNGKey(0))) < 1e-8


def test_l1_term_is_the_mean_uv_error_times_its_weight():
  from colorjax.models.yuv_gan import Discriminator, Generator
  generator, discriminator = Generator(), Discriminator()
  batch = {'rgb': np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8)}
  g_vars = jax.jit(generator.init)(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)),
                                   jnp.zeros((1, 100)))
  d_vars = jax.jit(discriminator.init)(jax.random.PRNGKey(1), jnp.zeros((1, 16, 16, 3)))
  key = jax.random.PRNGKey(2)
  losses_at = {w: jax.jit(losses.yuv_gan(generator, discriminator, 'bce', l1_weight=w)[1])(
      g_vars['params'], g_vars['batch_stats'], d_vars, batch, key) for w in (0.0, 3.0)}
  l1 = float(losses_at[3.0][1][0]['l1'])
  assert l1 > 0
  np.testing.assert_allclose(losses_at[3.0][0] - losses_at[0.0][0], 3.0 * l1, rtol=1e-5)


class _Constant(nn.Module):
  """A 'model' whose output is a parameter: the loss can be computed by hand."""
  value: tuple

  @nn.compact
  def __call__(self, x, train=False):
    value = self.param('value', lambda _: jnp.asarray(self.value, jnp.float32))
    return jnp.broadcast_to(value, x.shape[:-1] + value.shape)


def test_mae_and_classification_losses_hand_computed():
  rgb = np.zeros((2, 2, 2, 3), np.uint8)
  rgb[1] = 255  # one black and one white image
  batch = {'rgb': rgb, 'label': np.asarray([0, 2])}
  norm, key = color.NORMALIZATIONS['shifted'], jax.random.PRNGKey(0)
  model = _Constant((0.25, 0.5, 1.0))
  params = {'value': jnp.asarray((0.25, 0.5, 1.0))}
  expected = np.mean(np.abs(np.asarray([0.25, 0.5, 1.0]) - rgb[..., None, :] / 255.0))
  loss, _ = losses.rgb_regression(model, norm)(params, {}, batch, key)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # Black and white have ab = 0, i.e. 128 / 255 in the shifted normalization.
  model = _Constant((0.25, 0.75))
  params = {'value': jnp.asarray((0.25, 0.75))}
  loss, _ = losses.ab_regression(model, norm, error='absolute')(params, {}, batch, key)
  np.testing.assert_allclose(loss, np.mean(np.abs(np.asarray([0.25, 0.75]) - 128 / 255)),
                             atol=1e-4)
  logits = np.asarray([2.0, 0.0, -1.0])
  model, params = _Constant(tuple(logits)), {'inner': {'value': jnp.asarray(logits)}}
  flat = {'rgb': rgb[:, :1, :1].reshape(2, 1, 1, 3), 'label': batch['label']}
  classify = lambda p, b: losses.classification(_Flatten(model), norm)(p, {}, b, key)
  loss, (metrics, _) = classify(params, flat)
  log_softmax = logits - np.log(np.sum(np.exp(logits)))
  np.testing.assert_allclose(loss, -(log_softmax[0] + log_softmax[2]) / 2, rtol=1e-5)
  np.testing.assert_allclose(metrics['accuracy'], 0.5)


class _Flatten(nn.Module):
  """(N, 1, 1, C) -> (N, C) logits, as a classifier gives."""
  inner: nn.Module

  @nn.compact
  def __call__(self, x, train=False):
    return self.inner(x, train)[:, 0, 0]
