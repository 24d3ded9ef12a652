"""Metrics of colorization, shared by every experiment.

Per-image metrics take RGB as float in [0, 1] with images on the last three axes (H, W, 3).
Evaluation over a dataset streams (evaluator.py): `batch_sums` reduces one batch
(padding masked out) to sums that add across batches and processes, and `summarize` turns
the totals into metrics. Pure functions of arrays: nothing here reads data or devices.
"""

import jax
import jax.numpy as jnp
import numpy as np

AUC_MAX_ERROR = 150.0  # ab error thresholds 0..150, as Zhang et al.
PSNR_CAP_DB = 100.0    # a perfect reconstruction would be +inf; capped so means stay finite
SSIM_SIGMA, SSIM_RADIUS = 1.5, 5  # Wang et al.'s Gaussian window: 11x11, sigma 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def squared_distance(rgb_pred, rgb_true):
  """Sum over pixels and channels of squared RGB differences: the ablation write-up's
  'distance'. Reduces the last three axes, keeping any leading (run, batch) axes."""
  return jnp.sum((rgb_pred - rgb_true) ** 2, axis=(-3, -2, -1))


def psnr(rgb_pred, rgb_true, max_value=1.0):
  """Peak signal-to-noise ratio in dB over the last three axes, capped at PSNR_CAP_DB."""
  mse = jnp.mean((rgb_pred - rgb_true) ** 2, axis=(-3, -2, -1))
  floor = max_value ** 2 * 10.0 ** (-PSNR_CAP_DB / 10)
  return 10.0 * jnp.log10(max_value ** 2 / jnp.maximum(mse, floor))


def colorfulness(rgb):
  """Colorfulness of each image as the colorization field reports it (DDColor's
  basicsr/metrics/colorfulness.py, used by CT2 and ColorFormer): Hasler & Suesstrunk (2003)
  on RGB in [0, 1] scaled to 0..255, but with the opponent channels taken in absolute value,
  rg = |R - G|, yb = |(R + G) / 2 - B|, where the paper keeps their signs; so a red and a
  green region do not cancel in the mean term. Population std and mean over the pixels."""
  rgb = 255.0 * rgb
  rg = jnp.abs(rgb[..., 0] - rgb[..., 1])
  yb = jnp.abs(0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2])
  axes = (-2, -1)
  spread = jnp.sqrt(jnp.var(rg, axis=axes) + jnp.var(yb, axis=axes))
  mean = jnp.sqrt(jnp.mean(rg, axis=axes) ** 2 + jnp.mean(yb, axis=axes) ** 2)
  return spread + 0.3 * mean


def _gaussian_window():
  """The 1-D factor of SSIM's 11x11 window: sigma 1.5, as scipy.ndimage's (truncate 3.5)."""
  offsets = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1)
  weights = np.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
  return weights / weights.sum()


def _valid_filter(x):
  """The Gaussian-weighted mean of every full 11x11 window of x (..., H, W, C) ->
  (..., H - 10, W - 10, C), as two 1-D passes of shifted slices: elementwise, so that no
  float32 convolution on an accelerator drops to reduced precision (TF32)."""
  size, window = 2 * SSIM_RADIUS + 1, _gaussian_window()
  height, width = x.shape[-3] - size + 1, x.shape[-2] - size + 1
  x = sum(w * x[..., k:k + height, :, :] for k, w in enumerate(window))
  return sum(w * x[..., k:k + width, :] for k, w in enumerate(window))


def ssim(rgb_pred, rgb_true):
  """Mean SSIM of each image, as Wang et al. (2004), basicsr's calculate_ssim and
  skimage's structural_similarity (gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False) compute it: RGB in [0, 1] scaled to 0..255 (data range 255),
  the SSIM map of each channel averaged over the pixels whose 11x11 window lies inside the
  image, then over the channels. skimage filters with reflected borders, but drops the
  5-pixel border they touch, so its mean is this one. NaN for an image smaller than the
  window, where SSIM is not defined (skimage refuses it)."""
  x, y = 255.0 * rgb_pred, 255.0 * rgb_true
  if min(x.shape[-3:-1]) < 2 * SSIM_RADIUS + 1:
    return jnp.full(jnp.broadcast_shapes(x.shape, y.shape)[:-3], jnp.nan, jnp.float32)
  # Less the truth's mean, E[x^2] - E[x]^2 keeps its precision in float32 (bright, flat
  # images would be off by some 7e-5 of SSIM otherwise).
  offset = jnp.mean(y, axis=(-3, -2), keepdims=True)
  x, y = x - offset, y - offset
  mean_x, mean_y = _valid_filter(x), _valid_filter(y)
  var_x = _valid_filter(x * x) - mean_x ** 2
  var_y = _valid_filter(y * y) - mean_y ** 2
  cov = _valid_filter(x * y) - mean_x * mean_y
  mean_x, mean_y = mean_x + offset, mean_y + offset
  c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
  similarity = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)
                / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2)))
  return jnp.mean(similarity, axis=(-3, -2, -1))


def batch_sums(ab_pred, ab_true, rgb_pred, rgb_true, mask, pixel_class=None, num_classes=1):
  """Additive statistics of one batch. ab: (B, H, W, 2) in Lab units; rgb: (B, H, W, 3) in
  [0, 1]; mask: (B,) 1 for real examples, 0 for padding; pixel_class: (B, H, W) int in
  [0, num_classes), the ab bin of each true colour, for the class-rebalanced AuC."""
  mask = mask.astype(jnp.float32)
  pixel_mask = jnp.broadcast_to(mask[:, None, None], ab_true.shape[:3])
  if pixel_class is None:
    pixel_class = jnp.zeros(ab_true.shape[:3], jnp.int32)
  capped_error = jnp.minimum(jnp.linalg.norm(ab_pred - ab_true, axis=-1), AUC_MAX_ERROR)
  channel_mask = pixel_mask[..., None]
  per_class = lambda x: jnp.zeros(num_classes, jnp.float32).at[pixel_class.ravel()].add(
      x.ravel())
  return {
      'images': jnp.sum(mask),
      'pixels': jnp.sum(pixel_mask),
      'capped_error': jnp.sum(pixel_mask * capped_error),
      'class_pixels': per_class(pixel_mask),                  # (num_classes,)
      'class_capped_error': per_class(pixel_mask * capped_error),
      'psnr': jnp.sum(mask * psnr(rgb_pred, rgb_true)),
      'ssim': jnp.sum(mask * ssim(rgb_pred, rgb_true)),
      'colorfulness_pred': jnp.sum(mask * colorfulness(rgb_pred)),
      'colorfulness_true': jnp.sum(mask * colorfulness(rgb_true)),
      'ab_pred': jnp.sum(channel_mask * ab_pred, axis=(0, 1, 2)),  # per channel: (2,)
      'ab_pred_sq': jnp.sum(channel_mask * ab_pred ** 2, axis=(0, 1, 2)),
      'ab_true': jnp.sum(channel_mask * ab_true, axis=(0, 1, 2)),
      'ab_true_sq': jnp.sum(channel_mask * ab_true ** 2, axis=(0, 1, 2)),
      # Variance of ab within each image (mean over a and b): near 0 for a one-colour image.
      'image_ab_var_pred': jnp.sum(mask * jnp.mean(jnp.var(ab_pred, axis=(1, 2)), axis=-1)),
      'image_ab_var_true': jnp.sum(mask * jnp.mean(jnp.var(ab_true, axis=(1, 2)), axis=-1)),
  }


def image_sums(ab_pred, ab_true, rgb_pred, rgb_true, mask, pixel_class=None, num_classes=1):
  """batch_sums of every image on its own: each entry gains a leading batch axis (B, ...).
  Summed over it they are batch_sums; resampling the images resamples them (stats.py)."""
  if pixel_class is None:
    pixel_class = jnp.zeros(ab_true.shape[:3], jnp.int32)
  one = lambda *image: batch_sums(*(x[None] for x in image), num_classes=num_classes)
  return jax.vmap(one)(ab_pred, ab_true, rgb_pred, rgb_true, mask, pixel_class)


def diversity(ab_samples):
  """Mean ab distance between the samples of one input, over all pairs of samples and all
  pixels: (S, ..., H, W, 2) -> (...). S >= 2 samples of the same inputs (a GAN's outputs
  for S noise vectors)."""
  count = ab_samples.shape[0]
  distance = jnp.linalg.norm(ab_samples[:, None] - ab_samples[None], axis=-1)
  per_pair = jnp.mean(distance, axis=(-2, -1))            # (S, S, ...); 0 on the diagonal
  return jnp.sum(per_pair, axis=(0, 1)) / (count * (count - 1))


def gray_panel(lab):
  """The L channel as a gray RGB image in [0, 1], the input column of a sample grid."""
  return jnp.repeat(lab[..., :1] / 100.0, 3, axis=-1)


def add_sums(total, sums):
  return {k: total.get(k, 0.0) + np.asarray(v, np.float64) for k, v in sums.items()}


def _std(total, name):
  """Root mean of the a and b variances over all real pixels."""
  mean = total[name] / total['pixels']
  variance = np.maximum(total[f'{name}_sq'] / total['pixels'] - mean ** 2, 0.0)
  return float(np.sqrt(variance.mean()))


def _auc_rebalanced(total) -> float:
  present = total['class_pixels'] > 0
  class_error = total['class_capped_error'][present] / total['class_pixels'][present]
  return float(1.0 - np.mean(class_error) / AUC_MAX_ERROR)


def summarize(total) -> dict:
  """Totals of batch_sums -> metrics.

  AuC: the area under the fraction of pixels with ab error <= t, t from 0 to 150, normalized
  to 1; since the integral of 1[e <= t] over [0, 150] is 150 - min(e, 150), it is exactly
  1 - mean(min(e, 150)) / 150. Rebalanced AuC: the mean over the ab classes present of each
  class's AuC, so every colour class counts equally, as weighting pixels by inverse class
  frequency does; it stays finite, and one rare pixel weighs at most 1 / (classes present)."""
  true_std = _std(total, 'ab_true')
  total = {k: np.asarray(v, np.float64) for k, v in total.items()}
  extra = {}
  if 'diversity' in total:  # summed per image by the GAN's evaluator
    extra['diversity'] = float(total['diversity'] / total['images'])
  if 'ssim' in total:  # absent from the per-image sums saved before SSIM was added
    extra['ssim'] = float(total['ssim'] / total['images'])
  colorfulness_pred = float(total['colorfulness_pred'] / total['images'])
  colorfulness_true = float(total['colorfulness_true'] / total['images'])
  return extra | {
      'auc': float(1.0 - total['capped_error'] / total['pixels'] / AUC_MAX_ERROR),
      'auc_rebalanced': _auc_rebalanced(total),
      'psnr': float(total['psnr'] / total['images']),
      'colorfulness_pred': colorfulness_pred,
      'colorfulness_true': colorfulness_true,
      # deltaCF as DDColor reports it: of the mean colorfulness, not a mean of differences.
      'colorfulness_delta': abs(colorfulness_pred - colorfulness_true),
      'ab_std_pred': _std(total, 'ab_pred'),
      'ab_std_true': true_std,
      'ab_std_ratio': _std(total, 'ab_pred') / true_std if true_std > 0 else float('nan'),
      'image_ab_var_pred': float(total['image_ab_var_pred'] / total['images']),
      'image_ab_var_true': float(total['image_ab_var_true'] / total['images']),
  }
