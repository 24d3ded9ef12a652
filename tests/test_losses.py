"""Loss pieces against hand-computed cases."""

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color, losses
from colorjax.models.tiny_cnn import TinyCNN


def test_colour_weight_hand_computed():
  lab = np.zeros((3, 2, 2, 3), np.float32)
  lab[1, 0, 1, 1] = 5.0    # |a| = 5: not above the threshold, still gray
  lab[2, 1, 0, 2] = -5.5   # |b| = 5.5: colour
  np.testing.assert_array_equal(losses.colour_weight(jnp.asarray(lab), 5.0), [0, 0, 1])


def test_gray_images_carry_no_weight_in_ab_regression():
  rng = np.random.default_rng(0)
  colourful = rng.integers(0, 256, (1, 8, 8, 3), np.uint8)
  gray = np.repeat(rng.integers(0, 256, (1, 8, 8, 1), np.uint8), 3, axis=-1)
  model = TinyCNN(channels=3)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))['params']
  key = jax.random.PRNGKey(1)
  norm = color.NORMALIZATIONS['unit']
  weighted = losses.ab_regression(model, norm, gray_threshold=5.0)
  plain = losses.ab_regression(model, norm)
  both = {'rgb': np.concatenate([colourful, gray])}
  only_colour = {'rgb': colourful}
  np.testing.assert_allclose(weighted(params, {}, both, key)[0],
                             plain(params, {}, only_colour, key)[0], rtol=1e-6)
  # without the threshold the gray image counts, and changes the loss
  assert abs(float(plain(params, {}, both, key)[0]) -
             float(plain(params, {}, only_colour, key)[0])) > 1e-6
