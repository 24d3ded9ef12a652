"""Quantized ab: bins, soft-encoding, prior, rebalancing, annealed mean."""

import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color

from colorjax import quantize
from colorjax.errors import UsageError


@pytest.fixture(scope='module')
def bins():
  return quantize.gamut_bins()


@pytest.mark.slow
def test_gamut_bins_are_the_cells_of_every_8bit_srgb_colour(bins):
  """The definition, checked exhaustively with an independent Lab: the step-10 cells that
  scikit-image's rgb2lab (float64) puts the 16.7 million 8-bit colours in. A cell too many
  or too few (a looser gamut test, a float32 rounding at a cell edge) fails."""
  levels = np.arange(256) / 255.0
  cells = set()
  for red in np.split(levels, 16):
    rgb = np.stack(np.meshgrid(red, levels, levels, indexing='ij'), -1).reshape(-1, 3)
    cells |= set(map(tuple, np.round(skimage.color.rgb2lab(rgb)[:, 1:] / 10).astype(int)))
  assert {tuple(c) for c in (bins / 10).astype(int)} == cells
  assert len(np.unique(bins, axis=0)) == len(bins)


def test_nearest_bin_matches_brute_force(bins):
  ab = np.random.default_rng(1).uniform(-100, 100, (500, 2)).astype(np.float32)
  brute = np.argmin(((ab[:, None] - bins[None]) ** 2).sum(-1), axis=1)
  np.testing.assert_array_equal(quantize.nearest_bin(jnp.asarray(ab), bins), brute)


def _soft_encode_numpy(ab, bins, k=10, sigma=5.0):
  out = np.zeros((len(ab), len(bins)))
  for i, point in enumerate(ab.astype(np.float64)):
    d2 = ((bins - point) ** 2).sum(-1)
    nearest = np.argsort(d2)[:k]
    w = np.exp(-d2[nearest] / (2 * sigma ** 2))
    out[i, nearest] = w / w.sum()
  return out


def test_soft_encoding_matches_brute_force_numpy(bins):
  ab = np.random.default_rng(2).uniform(-90, 90, (300, 2)).astype(np.float32)
  ours = np.asarray(quantize.soft_encode(jnp.asarray(ab.reshape(10, 30, 2)), bins))
  ours = ours.reshape(300, -1)
  np.testing.assert_allclose(ours, _soft_encode_numpy(ab, bins), atol=1e-5)
  np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-5)
  assert np.all((ours > 0).sum(-1) == 10)


def test_prior_smoothing_and_rebalancing_hand_computed():
  bins = np.asarray([[0.0, 0.0], [10.0, 0.0], [0.0, 50.0]])
  counts = np.asarray([3.0, 1.0, 0.0])
  prior = quantize.empirical_prior(counts, bins, sigma=5.0)
  g = np.exp(-100 / 50)  # neighbours 10 apart, sigma 5: exp(-d^2 / (2 sigma^2))
  unnormalized = np.asarray([0.75 + 0.25 * g, 0.25 + 0.75 * g, 0.75 * np.exp(-2500 / 50)
                             + 0.25 * np.exp(-2600 / 50)])
  np.testing.assert_allclose(prior, unnormalized / unnormalized.sum(), rtol=1e-12)


def test_rebalancing_weights_hand_computed():
  """Prior (1/2, 1/3, 1/6), lambda = 1/2, Q = 3: 1 / (p / 2 + 1 / 6) = (12/5, 3, 4), whose
  mean under the prior is 43/15, so the weights are (36, 45, 60) / 43."""
  weights = quantize.rebalancing_weights(np.asarray([1 / 2, 1 / 3, 1 / 6]), mix=0.5)
  np.testing.assert_allclose(weights, np.asarray([36, 45, 60]) / 43, rtol=1e-12)


def test_rebalancing_limits():
  prior = np.asarray([0.7, 0.2, 0.1])
  np.testing.assert_allclose(quantize.rebalancing_weights(prior, mix=1.0), 1.0)  # uniform mix
  np.testing.assert_allclose(quantize.rebalancing_weights(prior, mix=0.0),
                             1 / prior / len(prior))  # pure inverse frequency, E_p[w] = 1


def test_count_bins():
  bins = np.asarray([[0.0, 0.0], [10.0, 0.0]], np.float32)
  ab = jnp.asarray([[1.0, 1.0], [9.0, 0.0], [2.0, -3.0], [30.0, 0.0]])
  np.testing.assert_array_equal(quantize.count_bins(ab, bins), [2, 2])


def test_annealed_mean_limits(bins):
  rng = np.random.default_rng(3)
  logits = rng.normal(0, 2, (4, len(bins)))
  logits[np.arange(4), rng.integers(0, len(bins), 4)] += 10.0  # a clear mode
  logits = jnp.asarray(logits, jnp.float32)
  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(quantize.annealed_mean(logits, bins, 1.0), probabilities @ bins,
                             rtol=1e-4, atol=1e-3)
  mode = bins[np.argmax(np.asarray(logits), -1)]
  np.testing.assert_allclose(quantize.annealed_mean(logits, bins, 0.01), mode, atol=1e-3)


def test_user_bin_file(tmp_path):
  np.save(tmp_path / 'bins.npy', np.asarray([[0, 0], [10, 10], [-10, 20]]))
  assert quantize.load_bins(str(tmp_path / 'bins.npy')).shape == (3, 2)
  np.save(tmp_path / 'bad.npy', np.zeros((4, 3)))
  with pytest.raises(UsageError, match='Q x 2'):
    quantize.load_bins(str(tmp_path / 'bad.npy'))
  with pytest.raises(UsageError, match='not found'):
    quantize.load_bins(str(tmp_path / 'missing.npy'))


def test_soft_encoding_takes_exactly_ten_bins_when_distances_tie():
  """ab = (5, 5) lies between 4 grid bins (d^2 = 50); the next 8 bins all lie at d^2 = 250.
  Exactly 10 carry weight, by hand: 4 x 1 and 6 x exp(-(250 - 50) / (2 * 25)), normalized."""
  bins = quantize.gamut_bins()
  target = np.asarray(quantize.soft_encode(jnp.asarray([[5.0, 5.0]]), bins))[0]
  assert np.count_nonzero(target) == 10
  far = np.exp(-(250 - 50) / 50)
  total = 4 + 6 * far
  near = np.linalg.norm(bins - 5.0, axis=1) < 8
  np.testing.assert_allclose(target[near], 1 / total, rtol=1e-5)
  np.testing.assert_allclose(np.sort(target[target > 0])[:6], far / total, rtol=1e-5)
  assert abs(target.sum() - 1) < 1e-6
