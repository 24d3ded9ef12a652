"""Metrics against scikit-image and closed forms."""

import numpy as np
import skimage.data
import skimage.metrics

from colorjax import evaluate


def test_psnr_matches_skimage_per_image():
  rng = np.random.default_rng(0)
  truth = skimage.data.coffee()[:64, :96] / 255.0
  noise = rng.normal(0, 1, (2, *truth.shape)) * np.asarray([0.01, 0.1])[:, None, None, None]
  preds = np.clip(truth[None] + noise, 0, 1)
  ours = np.asarray(evaluate.psnr(preds.astype(np.float32), truth.astype(np.float32)))
  expected = [skimage.metrics.peak_signal_noise_ratio(truth, p, data_range=1.0) for p in preds]
  np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_squared_distance_closed_form():
  """A 3x5 image off by 0.1 in every channel: distance = 3 * 5 * 3 * 0.01."""
  truth = np.zeros((3, 5, 3), np.float32)
  assert abs(float(evaluate.squared_distance(truth + 0.1, truth)) - 0.45) < 1e-6
  batch = np.stack([truth, truth + 0.2])
  np.testing.assert_allclose(evaluate.squared_distance(batch, truth), [0.0, 1.8], rtol=1e-5)
