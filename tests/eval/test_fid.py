"""The Frechet distance of FID against pytorch-fid's formula (scipy's sqrtm) and closed forms,
and the streamed feature statistics against numpy."""

import numpy as np
import pytest
import scipy.linalg

from colorjax.eval import fid


def _pytorch_fid(mu1, cov1, mu2, cov2):
  """pytorch-fid's calculate_frechet_distance in float64: sqrtm of the product, real part."""
  covmean = scipy.linalg.sqrtm(cov1 @ cov2).real
  difference = mu1 - mu2
  return difference @ difference + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean)


def _gaussian_features(seed, count, dim, shift):
  """Correlated features: normal samples through a random mixing matrix, shifted."""
  rng = np.random.default_rng(seed)
  return rng.normal(0, 1, (count, dim)) @ rng.normal(0, 0.3, (dim, dim)) + shift


def _moments(features):
  return features.mean(axis=0), np.cov(features, rowvar=False)


@pytest.mark.parametrize('count', [500, 40])  # 40 < 64: singular, rank-deficient covariances
def test_frechet_distance_matches_pytorch_fids_formula(count):
  a, b = _gaussian_features(0, count, 64, 0.0), _gaussian_features(1, count, 64, 0.5)
  expected = _pytorch_fid(*_moments(a), *_moments(b))
  assert expected > 100  # two different Gaussians, far from 0
  np.testing.assert_allclose(fid.frechet_distance(*_moments(a), *_moments(b)), expected,
                             rtol=1e-6)


def test_identical_statistics_are_at_distance_zero():
  moments = _moments(_gaussian_features(2, 500, 64, 1.0))
  assert abs(fid.frechet_distance(*moments, *moments)) < 1e-6


def test_one_dimensional_closed_form():
  """For 1-D Gaussians the distance is (mu1 - mu2)^2 + (s1 - s2)^2: here 3^2 + (2 - 0.5)^2."""
  distance = fid.frechet_distance(np.asarray([1.0]), np.asarray([[4.0]]), np.asarray([-2.0]),
                                  np.asarray([[0.25]]))
  assert distance == pytest.approx(9.0 + 2.25, rel=1e-12)


def test_feature_stats_of_uneven_batches_equal_numpy_over_all_features():
  features = _gaussian_features(3, 203, 16, 2.0)
  batches = np.split(features, [1, 50, 51, 180])
  streamed = fid.FeatureStats()
  for batch in batches[:3]:
    streamed.add(batch)
  other = fid.FeatureStats()  # the rest, as a second process would sum them
  for batch in batches[3:]:
    other.add(batch)
  merged = fid.FeatureStats() + streamed + other
  assert merged.count == 203 and streamed.count == 51  # adding leaves both sides as they were
  np.testing.assert_allclose(merged.mean(), features.mean(axis=0), rtol=1e-10)
  np.testing.assert_allclose(merged.covariance(), np.cov(features, rowvar=False), rtol=1e-10)
  features_b = _gaussian_features(4, 300, 16, 0.0)
  assert fid.fid(merged, fid.FeatureStats().add(features_b)) == pytest.approx(
      _pytorch_fid(*_moments(features), *_moments(features_b)), rel=1e-8)


def test_feature_stats_refuse_what_has_no_statistics():
  with pytest.raises(ValueError, match=r'expected \(N, D\)'):
    fid.FeatureStats().add(np.zeros(8))
  with pytest.raises(ValueError, match='dimension'):
    fid.FeatureStats().add(np.zeros((3, 16))).add(np.zeros((3, 8)))
  with pytest.raises(ValueError, match='2 features or more'):
    fid.FeatureStats().add(np.zeros((1, 16))).covariance()
