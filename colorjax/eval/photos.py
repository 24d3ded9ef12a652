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
from colorjax.eval import metrics

GRID_ROWS = 6
MEAN_AB_IMAGES = 500    # training images averaged for the mean-ab baseline


@jax.jit
def photo_sums(output_uint8, truth_uint8):
  """metrics.batch_sums of one colorized photo against the original (same size)."""
  pred, true = (x.astype(jnp.float32)[None] / 255.0 for x in (output_uint8, truth_uint8))
  ab_pred, ab_true = color.rgb_to_lab(pred)[..., 1:], color.rgb_to_lab(true)[..., 1:]
  return metrics.batch_sums(ab_pred, ab_true, pred, true, jnp.ones(1),
                            quantize.grid_cell(ab_true), quantize.NUM_GRID_CELLS)


@jax.jit
def constant_color(truth_uint8, ab):
  """The photo's own L with one ab everywhere, as colorize would write it."""
  lightness = color.lab_from_uint8(truth_uint8)[..., :1]
  return color.colorized_uint8(lightness, jnp.broadcast_to(ab, (1, 1, 2)).astype(jnp.float32))


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
  split of a data source; unreadable files are reported and skipped."""
  if source_spec:
    source = sources.load_source(configs.data_config(source=source_spec), 'eval')
    for i in range(len(source)):
      yield f'{source_spec} #{i}', source[i]['image']
    return
  files, missing = images.find_images(paths)
  for path in missing:
    print(f'skipped {path}: no such file or folder', file=sys.stderr)
  for file in files:
    try:
      yield str(file), images.read_rgb(file)
    except Exception as e:  # decoders raise many types; all mean "not an image we can read"
      print(f'skipped {file}: cannot read it as an image ({type(e).__name__})', file=sys.stderr)


def score(colorizer, named_photos, mean_ab=None):
  """({'model' | 'gray' | 'mean ab': per-photo sums}, grid rows, names)."""
  sums, rows, names = {}, [], []
  candidates = {'gray': np.zeros(2, np.float32)}
  if mean_ab is not None:
    candidates['mean ab'] = np.asarray(mean_ab, np.float32)
  for name, rgb in tqdm(named_photos, desc='evaluate', unit='photo', disable=None):
    output = colorizer(rgb)
    output = output[0] if output.ndim == 4 else output  # the first of several samples
    sums.setdefault('model', []).append(jax.device_get(photo_sums(output, rgb)))
    for baseline, ab in candidates.items():
      sums.setdefault(baseline, []).append(
          jax.device_get(photo_sums(constant_color(rgb, ab), rgb)))
    if len(rows) < GRID_ROWS:
      rows.append([np.asarray(constant_color(rgb, candidates['gray'])), output, rgb])
    names.append(name)
  return sums, rows, names
