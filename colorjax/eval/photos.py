"""Scoring a trained run on any photos at full resolution (`run.py evaluate`).

Each photo is colorized exactly as `run.py colorize` writes it (colorjax.inference) and
compared with itself: the experiments' metrics (metrics.batch_sums and summarize). Two
baselines are scored the same way: gray (ab = 0) and, where the run's training data is
known, its mean ab on every pixel.
"""

import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from colorjax import color, configs, quantize
from colorjax.data import images, sources
from colorjax.errors import UsageError
from colorjax.eval import metrics

GRID_ROWS = 6
DISPLAY_SIDE = 512  # pixels: the long side of a photo in the figure grid
MEAN_AB_IMAGES = 500    # training images averaged for the mean-ab baseline


@jax.jit
def photo_sums(output_uint8, truth_uint8):
  """metrics.batch_sums of one colorized photo against the original (same size)."""
  pred, true = (x.astype(jnp.float32)[None] / 255.0 for x in (output_uint8, truth_uint8))
  ab_pred, ab_true = color.rgb_to_lab(pred)[..., 1:], color.rgb_to_lab(true)[..., 1:]
  return metrics.batch_sums(ab_pred, ab_true, pred, true, jnp.ones(1),
                            quantize.grid_cell(ab_true), quantize.NUM_GRID_CELLS)


def constant_color(colorizer, truth_uint8, ab):
  """The photo's own L with one ab everywhere, as colorize would write it (by the
  colorizer's pipeline, so that baselines and model are converted alike)."""
  return colorizer.colorized(truth_uint8, np.reshape(ab, (1, 1, 1, 2)).astype(np.float32))[0]


def stacked(per_image: list[dict]) -> dict:
  """A list of per-photo sums -> {key: (photos, ...)}, as stats.bootstrap takes them."""
  return {k: np.stack([np.asarray(sums[k], np.float64) for sums in per_image])
          for k in per_image[0]}


def training_mean_ab(config, workdir: pathlib.Path):
  """The mean ab of the run's training data, where it is known: a Zhang run's prior
  (prior.npz, over its bins), else up to MEAN_AB_IMAGES training images of an in-memory or
  folder source; else None (a tfds dataset, an imported network)."""
  prior = workdir / 'prior.npz'
  if prior.is_file():
    with np.load(prior) as cached:
      return np.asarray(cached['prior']) @ quantize.run_bins(config.get('bins', ''), workdir)
  data_config = config.get('data') or config.get('colorizer', {}).get('data')
  if not data_config or not (data_config.source == 'samples'
                             or data_config.source.startswith(('folder:', 'npz:'))):
    return None
  source = sources.load_source(ml_collections.ConfigDict(data_config), 'train')
  total, pixels = np.zeros(2), 0
  for index in range(min(MEAN_AB_IMAGES, len(source))):
    ab = np.asarray(color.lab_from_uint8(source[index]['image']))[..., 1:].reshape(-1, 2)
    total, pixels = total + ab.sum(0), pixels + len(ab)
  return total / pixels


def named_photos(paths, source_spec):
  """(name, uint8 RGB) of the photos to score: files and folders (recursively), or the eval
  split of a data source (loaded here, so that its mistakes come before any scoring);
  unreadable files are reported and skipped."""
  if source_spec:
    return _source_photos(source_spec)
  files, missing = images.find_images(paths)
  for path in missing:
    _skipped(path, 'no such file or folder')
  return _file_photos(files)


def eval_source(data_config) -> sources.Source:
  """The eval split of the source `run.py evaluate --source` names (loaded here, so that its
  mistakes come before any scoring)."""
  try:
    return sources.load_source(data_config, 'eval')
  except UsageError as e:  # its messages name the training flag; here the user passed --source
    raise UsageError(str(e).replace('--config.data.source', '--source')) from None


def _source_photos(spec):
  source = eval_source(configs.data_config(source=spec))
  return ((f'{spec} #{i}', source[i]['image']) for i in range(len(source)))


def _file_photos(files):
  for file in files:
    try:
      yield str(file), images.read_rgb(file)
    except images.TooLarge as e:
      _skipped(file, e)
    except Exception as e:  # decoders raise many types; all mean "not an image we can read"
      _skipped(file, f'cannot read it as an image ({type(e).__name__})')


def _skipped(name, reason):
  tqdm.write(f'skipped {name}: {reason}', file=sys.stderr)


def score(colorizer, named_photos, mean_ab=None, *, keep_gray=False, fid_features=None):
  """({'model' | 'gray' | 'mean ab': per-photo sums}, grid rows, names). Photos without
  colour are left out in one line (their colour metrics are undefined: an ab-std ratio over
  an ab std of 0, a gray baseline that is exact), unless `keep_gray` (a benchmark protocol
  that counts every image); either way, none with colour is a UsageError. `fid_features`
  (protocol.FidFeatures) is given each output with its original."""
  sums, rows, names, gray, colored = {}, [], [], [], 0
  candidates = {'gray': np.zeros(2, np.float32)}
  if mean_ab is not None:
    candidates['mean ab'] = np.asarray(mean_ab, np.float32)
  threshold = configs.data_config().gray_threshold
  for name, rgb in tqdm(named_photos, desc='evaluate', unit='photo', disable=None):
    has_color = images.has_color(rgb, threshold)
    if not has_color:
      gray.append(name)
      if not keep_gray:
        continue
    try:
      output = colorizer(rgb)
    except images.TooLarge as e:
      _skipped(name, e)
      continue
    output = output[0] if output.ndim == 4 else output  # the first of several samples
    sums.setdefault('model', []).append(jax.device_get(photo_sums(output, rgb)))
    if fid_features:
      fid_features.add(output, rgb)
    for baseline, ab in candidates.items():
      constant = constant_color(colorizer, rgb, ab)
      sums.setdefault(baseline, []).append(jax.device_get(photo_sums(constant, rgb)))
      if baseline == 'gray' and len(rows) < GRID_ROWS:
        rows.append([_displayed(constant), _displayed(output), _displayed(rgb)])
    names.append(name)
    colored += has_color
  _report_gray(gray, colored, threshold, kept=keep_gray)
  return sums, rows, names


def _displayed(rgb_uint8) -> np.ndarray:
  """A photo shrunk to the figure's size (long side <= DISPLAY_SIDE): the grid's rows are
  kept until every photo is scored, so at full resolution they would cost the memory of
  GRID_ROWS photos and outputs, and be drawn no sharper."""
  rgb = np.asarray(rgb_uint8)
  h, w = rgb.shape[:2]
  scale = DISPLAY_SIDE / max(h, w)
  if scale >= 1:
    return rgb
  return images.resize_rgb(rgb, (max(1, round(h * scale)), max(1, round(w * scale))))


def _report_gray(gray, colored, threshold, kept):
  """A UsageError when no scored photo has colour; the gray ones left out are listed."""
  if not gray:
    return
  what = (f'{len(gray)} gray photo(s) (every |a|, |b| <= {threshold}: no colour to score '
          'the colorization against)')
  if not colored:
    raise UsageError(f'{what} and none with colour: pass colour photos; evaluate compares '
                     "a colorization with the photo's own colour")
  if not kept:
    listed = ', '.join(gray[:3]) + (' ...' if len(gray) > 3 else '')
    tqdm.write(f'left out {what}: {listed}', file=sys.stderr)
