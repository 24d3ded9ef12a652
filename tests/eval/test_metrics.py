"""Metrics against scikit-image and closed forms."""

import jax
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import skimage.metrics

from colorjax import color, quantize
from colorjax.eval import metrics


def test_psnr_matches_skimage_per_image():
  rng = np.random.default_rng(0)
  truth = skimage.data.coffee()[:64, :96] / 255.0
  noise = rng.normal(0, 1, (2, *truth.shape)) * np.asarray([0.01, 0.1])[:, None, None, None]
  preds = np.clip(truth[None] + noise, 0, 1)
  ours = np.asarray(metrics.psnr(preds.astype(np.float32), truth.astype(np.float32)))
  expected = [skimage.metrics.peak_signal_noise_ratio(truth, p, data_range=1.0) for p in preds]
  np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_squared_distance_closed_form():
  """A 3x5 image off by 0.1 in every channel: distance = 3 * 5 * 3 * 0.01."""
  truth = np.zeros((3, 5, 3), np.float32)
  assert abs(float(metrics.squared_distance(truth + 0.1, truth)) - 0.45) < 1e-6
  batch = np.stack([truth, truth + 0.2])
  np.testing.assert_allclose(metrics.squared_distance(batch, truth), [0.0, 1.8], rtol=1e-5)


def test_psnr_of_a_perfect_prediction_is_finite_and_the_best():
  """A perfect image keeps a batch's mean PSNR finite and scores above every imperfect one,
  while an image at 90 dB (every value off by 10^-4.5, closed form) is left as it is."""
  truth = np.zeros((3, 4, 4, 3), np.float32)
  pred = truth + np.asarray([0.0, 10 ** -4.5, 0.1], np.float32)[:, None, None, None]
  scores = np.asarray(metrics.psnr(pred, truth), np.float64)
  assert np.isfinite(scores.mean()) and scores[0] > scores[1] > scores[2]
  np.testing.assert_allclose(scores[1:], [90.0, 20.0], atol=1e-3)


def test_colorfulness_closed_forms():
  gray = np.full((1, 5, 5, 3), 0.4, np.float32)
  assert float(metrics.colorfulness(gray)[0]) < 1e-4
  r, g, b = 0.8, 0.4, 0.2  # a flat colour: no spread, 0.3 * |(rg, yb)| * 255
  flat = np.broadcast_to(np.asarray([r, g, b], np.float32), (1, 5, 5, 3))
  expected = 0.3 * 255 * np.hypot(r - g, 0.5 * (r + g) - b)
  np.testing.assert_allclose(metrics.colorfulness(flat), [expected], rtol=1e-5)
  halves = np.zeros((1, 2, 2, 3), np.float32)  # top row yellow (1, 1, 0), bottom row black:
  halves[0, 0, :, :2] = 1.0                     # rg = 0; yb in {255, 0}: std 127.5, mean 127.5
  np.testing.assert_allclose(metrics.colorfulness(halves), [127.5 + 0.3 * 127.5], rtol=1e-5)


def test_colorfulness_takes_the_opponents_in_absolute_value():
  """Half pure red (255, 0, 0), half pure green (0, 255, 0): rg = |R - G| = 255 and
  yb = |(R + G) / 2 - B| = 127.5 on both halves, so no spread and CF = 0.3 * sqrt(255^2 +
  127.5^2) = 0.3 * 127.5 * sqrt(5) = 85.5; the paper's signed rg (+-255) would give std 255,
  mean 0 and CF = 255 + 0.3 * 127.5 = 293.25. Half blue, half yellow: rg = 0, yb = 255 on
  both: CF = 0.3 * 255 (signed: yb = +-255, CF = 255)."""
  red_green = np.zeros((2, 4, 3), np.float32)
  red_green[:, :2, 0] = red_green[:, 2:, 1] = 1.0
  blue_yellow = np.zeros((2, 4, 3), np.float32)
  blue_yellow[:, :2, 2] = blue_yellow[:, 2:, :2] = 1.0
  np.testing.assert_allclose(metrics.colorfulness(np.stack([red_green, blue_yellow])),
                             [0.3 * 127.5 * np.sqrt(5), 0.3 * 255], rtol=1e-5)


def _ddcolor_colorfulness(bgr):
  """DDColor's basicsr/metrics/colorfulness.py calculate_cf, with cv2.split as numpy's."""
  blue, green, red = np.moveaxis(bgr.astype('float'), -1, 0)
  rg = np.absolute(red - green)
  yb = np.absolute(0.5 * (red + green) - blue)
  (rb_mean, rb_std) = (np.mean(rg), np.std(rg))
  (yb_mean, yb_std) = (np.mean(yb), np.std(yb))
  std_root = np.sqrt((rb_std ** 2) + (yb_std ** 2))
  mean_root = np.sqrt((rb_mean ** 2) + (yb_mean ** 2))
  return std_root + (0.3 * mean_root)


def test_colorfulness_is_ddcolors_on_photos():
  photos = np.stack([photo[:300, :400] for photo in (
      skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea())])
  expected = [_ddcolor_colorfulness(photo[..., ::-1]) for photo in photos]  # cv2 reads BGR
  assert max(expected) > 1.2 * min(expected)  # photos that differ in colorfulness
  np.testing.assert_allclose(metrics.colorfulness(photos.astype(np.float32) / 255), expected,
                             rtol=1e-5)


def _skimage_ssim(pred_uint8, true_uint8):
  return skimage.metrics.structural_similarity(
      pred_uint8, true_uint8, channel_axis=-1, data_range=255, gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False)


def _altered(photo):
  """A blurred, colour-shifted 8-bit version of a photo."""
  blurred = scipy.ndimage.gaussian_filter(photo.astype(np.float64), (1.2, 1.2, 0))
  return np.clip(blurred * [1.1, 0.9, 1.0] + [10, -5, 20], 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize('size', [(11, 11), (12, 17), (33, 64), (101, 77), (256, 255)])
def test_ssim_matches_skimage_on_a_photo(size):
  truth = skimage.data.astronaut()[:size[0], :size[1]]
  pred = _altered(truth)
  ours = float(metrics.ssim(pred / np.float32(255), truth / np.float32(255)))
  assert abs(ours - _skimage_ssim(pred, truth)) < 1e-5


def test_ssim_matches_skimage_on_random_images_and_keeps_leading_axes():
  """A batch of random images (SSIM near 0) and a bright, nearly flat pair (near 1, where
  float32 variances of the raw values would be off by some 7e-5)."""
  random = np.random.default_rng(4).integers(0, 256, (2, 3, 23, 31, 3), dtype=np.uint8)
  ours = np.asarray(jax.jit(metrics.ssim)(random[0] / np.float32(255),
                                          random[1] / np.float32(255)))
  assert ours.shape == (3,)
  np.testing.assert_allclose(ours, [_skimage_ssim(p, t) for p, t in zip(*random)], atol=1e-5)
  bright = np.full((64, 64, 3), 250, np.uint8)
  striped = bright.copy()
  striped[::2] = 249
  ours = float(metrics.ssim(striped / np.float32(255), bright / np.float32(255)))
  assert abs(ours - _skimage_ssim(striped, bright)) < 1e-6


def test_ssim_of_an_image_with_itself_is_one_and_undefined_below_the_window():
  photo = skimage.data.coffee()[:40, :50] / np.float32(255)
  assert abs(float(metrics.ssim(photo, photo)) - 1.0) < 1e-6
  assert np.isnan(metrics.ssim(photo[:10], photo[:10]))


def test_batch_sums_ssim_ignores_padding():
  truth = skimage.data.chelsea()[:32, :40]
  pred = _altered(truth)
  rgb_pred = np.stack([pred, 255 - truth]) / np.float32(255)  # the second is padding
  rgb_true = np.stack([truth, truth]) / np.float32(255)
  ab = np.zeros((2, 32, 40, 2), np.float32)
  scored = metrics.summarize(metrics.add_sums({}, metrics.batch_sums(
      ab, ab, rgb_pred, rgb_true, np.asarray([1.0, 0.0], np.float32))))
  assert abs(scored['ssim'] - _skimage_ssim(pred, truth)) < 1e-5


def test_summarize_ssim_and_colorfulness_delta_by_hand():
  """Two images: SSIM sums to 1.5 (mean 0.75); colorfulness sums 60 predicted and 100 true,
  so deltaCF = |60 / 2 - 100 / 2| = 20. Sums saved before SSIM existed report none."""
  total = {'images': 2.0, 'pixels': 8.0, 'capped_error': 0.0, 'class_pixels': np.ones(1),
           'class_capped_error': np.zeros(1), 'psnr': 40.0, 'ssim': 1.5,
           'colorfulness_pred': 60.0, 'colorfulness_true': 100.0,
           'image_ab_var_pred': 0.0, 'image_ab_var_true': 0.0,
           **{f'ab_{side}{sq}': np.ones(2) for side in ('pred', 'true') for sq in ('', '_sq')}}
  scored = metrics.summarize(total)
  assert scored['ssim'] == 0.75 and scored['colorfulness_delta'] == 20.0
  assert (scored['colorfulness_pred'], scored['colorfulness_true']) == (30.0, 50.0)
  del total['ssim']
  assert 'ssim' not in metrics.summarize(total)


def _metrics(ab_pred, ab_true, mask=None, pixel_class=None, num_classes=1):
  b = ab_true.shape[0]
  rgb = np.zeros(ab_true.shape[:3] + (3,), np.float32) + 0.5
  mask = np.ones(b, np.float32) if mask is None else mask
  total = metrics.add_sums({}, metrics.batch_sums(ab_pred, ab_true, rgb, rgb, mask,
                                                    pixel_class, num_classes))
  return metrics.summarize(total)


def test_perfect_prediction_metrics():
  ab = np.random.default_rng(2).normal(0, 20, (3, 4, 5, 2)).astype(np.float32)
  scored = _metrics(ab, ab)
  assert scored['auc'] == 1.0 and scored['auc_rebalanced'] == 1.0
  assert abs(scored['ab_std_ratio'] - 1.0) < 1e-6
  assert scored['psnr'] == metrics.PSNR_CAP_DB


def test_constant_prediction_metrics():
  """Error 30 at every pixel: AuC = 1 - 30/150; predicting 0 has ab std 0."""
  ab_true = np.zeros((2, 3, 3, 2), np.float32)
  ab_true[..., 0] = 30.0 * np.where(np.arange(9).reshape(3, 3) % 2, 1, -1)
  scored = _metrics(np.zeros_like(ab_true), ab_true)
  np.testing.assert_allclose(scored['auc'], 0.8, rtol=1e-6)
  assert scored['ab_std_ratio'] == 0.0
  far = _metrics(np.full_like(ab_true, 500.0), ab_true)  # every error beyond 150
  assert far['auc'] == 0.0


def test_padding_is_ignored_and_classes_rebalance():
  ab_true = np.zeros((2, 2, 2, 2), np.float32)
  ab_pred = np.zeros_like(ab_true)
  ab_pred[1] = 1000.0  # the second example is padding: its errors must not count
  assert _metrics(ab_pred, ab_true, mask=np.asarray([1.0, 0.0]))['auc'] == 1.0
  ab_pred = np.zeros_like(ab_true)
  ab_pred[0, 0, 0, 0] = 75.0  # one pixel off by 75 (AuC 0.5 instead of 1) ...
  classes = np.zeros((2, 2, 2), np.int32)
  classes[0, 0, 0] = 2        # ... alone in its class; class 1 is empty, class 0 holds 7
  np.testing.assert_allclose(_metrics(ab_pred, ab_true)['auc'], 1 - 0.5 / 8, rtol=1e-6)
  # By hand: class 2 has AuC 0.5, class 0 has AuC 1; the mean over the 2 present is 0.75.
  np.testing.assert_allclose(
      _metrics(ab_pred, ab_true, pixel_class=classes, num_classes=3)['auc_rebalanced'], 0.75,
      rtol=1e-6)
  # Padding pixels are in no class: a padded pixel's class does not count as present.
  classes[1] = 1
  np.testing.assert_allclose(
      _metrics(ab_pred, ab_true, mask=np.asarray([1.0, 0.0]), pixel_class=classes,
               num_classes=3)['auc_rebalanced'], 0.75, rtol=1e-6)


def test_rebalanced_auc_stays_finite_with_rare_extreme_colors():
  """A pixel near pure blue (b about -108) made the old inverse-prior weights overflow
  float32; per-class means cannot."""
  ab_true = np.zeros((1, 4, 4, 2), np.float32)
  ab_true[0, 0, 0] = (79.0, -107.9)
  ab_pred = np.zeros_like(ab_true)
  classes = np.asarray(quantize.grid_cell(ab_true))
  scored = _metrics(ab_pred, ab_true, pixel_class=classes, num_classes=quantize.NUM_GRID_CELLS)
  error = min(np.hypot(79.0, 107.9), 150.0)
  np.testing.assert_allclose(scored['auc_rebalanced'], 1 - (error / 150) / 2, rtol=1e-5)


def test_grid_cell_is_the_nearest_gamut_bin_of_in_gamut_colors():
  rng = np.random.default_rng(3)
  rgb = rng.random((500, 3)).astype(np.float32)
  ab = np.asarray(color.rgb_to_lab(rgb))[:, 1:]
  bins = quantize.gamut_bins()
  cell_centres = np.stack(np.divmod(np.asarray(quantize.grid_cell(bins)),
                                    2 * quantize.GRID_HALF + 1), -1)
  by_cell = {tuple(c): i for i, c in enumerate(cell_centres)}
  nearest = np.argmin(((ab[:, None] - bins[None]) ** 2).sum(-1), axis=1)
  ours = np.stack(np.divmod(np.asarray(quantize.grid_cell(ab)), 2 * quantize.GRID_HALF + 1), -1)
  agree = [by_cell.get(tuple(c)) == n for c, n in zip(ours, nearest)]
  assert np.mean(agree) == 1.0


def test_diversity_against_a_loop_over_pairs():
  samples = np.random.default_rng(0).normal(0, 20, (4, 2, 3, 5, 2)).astype(np.float32)
  pair_means = [np.mean(np.linalg.norm(samples[s] - samples[t], axis=-1), axis=(1, 2))
                for s in range(4) for t in range(4) if s < t]
  np.testing.assert_allclose(metrics.diversity(samples), np.mean(pair_means, axis=0),
                             rtol=1e-5)
  identical = np.repeat(samples[:1], 3, axis=0)
  np.testing.assert_allclose(metrics.diversity(identical), [0, 0], atol=1e-6)


def test_per_image_ab_variance_against_numpy_and_padding_ignored():
  rng = np.random.default_rng(1)
  ab_true = rng.normal(0, 30, (3, 4, 5, 2)).astype(np.float32)
  ab_pred = np.broadcast_to(rng.normal(0, 30, (3, 1, 1, 2)), ab_true.shape).astype(np.float32)
  rgb = np.zeros((3, 4, 5, 3), np.float32)
  mask = np.asarray([1.0, 1.0, 0.0], np.float32)
  scored = metrics.summarize(metrics.add_sums({}, metrics.batch_sums(
      ab_pred, ab_true, rgb, rgb, mask)))
  expected_true = np.mean([ab_true[i].reshape(-1, 2).var(axis=0).mean() for i in range(2)])
  np.testing.assert_allclose(scored['image_ab_var_true'], expected_true, rtol=1e-5)
  assert scored['image_ab_var_pred'] < 1e-6  # one colour per image: no variance
