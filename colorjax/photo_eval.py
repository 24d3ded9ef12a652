"""`run.py evaluate`: score a trained run on any photos, at full resolution.

  python run.py evaluate --workdir=runs/zhang_softmax kodak/ --out=runs/eval_kodak
  python run.py evaluate --workdir=runs/zhang_softmax --source=folder:../shared/data/bsds300

Each photo is colorized exactly as `run.py colorize` writes it (colorjax.inference) and
compared with itself: the experiments' metrics (evaluate.batch_sums and summarize: PSNR, AuC
raw and rebalanced, colourfulness, ab-std ratio, per-image ab variance), each with a 95%
bootstrap interval over the photos. Two baselines are scored the same way: gray (ab = 0)
and, where the run's training data is known, its mean ab on every pixel, and the model's
paired difference from each (stats.paired_difference over the same photos). Writes
evaluation.json, evaluation.md and evaluation.png (input, output, original).
"""

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from colorjax import (color, colorize, configs, data, evaluate, images, inference, quantize,
                      report, stats)
from colorjax.errors import ArgumentParser, UsageError
from colorjax.program import Options

GRID_ROWS = 6
MEAN_AB_IMAGES = 500    # training images averaged for the mean-ab baseline


@jax.jit
def image_sums(output_uint8, truth_uint8):
  """evaluate.batch_sums of one colorized photo against the original (same size)."""
  pred, true = (x.astype(jnp.float32)[None] / 255.0 for x in (output_uint8, truth_uint8))
  ab_pred, ab_true = color.rgb_to_lab(pred)[..., 1:], color.rgb_to_lab(true)[..., 1:]
  return evaluate.batch_sums(ab_pred, ab_true, pred, true, jnp.ones(1),
                             quantize.grid_cell(ab_true), quantize.NUM_GRID_CELLS)


@jax.jit
def constant_colour(truth_uint8, ab):
  """The photo's own L with one ab everywhere, as colorize would write it."""
  lightness = color.lab_from_uint8(truth_uint8)[..., :1]
  return color.colorized_uint8(lightness, jnp.broadcast_to(ab, (1, 1, 2)).astype(jnp.float32))


def _stacked(per_image: list[dict]) -> dict:
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
  source = data.load_source(ml_collections.ConfigDict(data_config), 'train')
  total, pixels = np.zeros(2), 0
  for index in range(min(MEAN_AB_IMAGES, len(source))):
    ab = np.asarray(color.lab_from_uint8(source[index]['image']))[..., 1:].reshape(-1, 2)
    total, pixels = total + ab.sum(0), pixels + len(ab)
  return total / pixels


def photos(paths, source_spec):
  """(name, uint8 RGB) of the photos to score: files and folders (recursively), or the eval
  split of a data source; unreadable files are reported and skipped."""
  if source_spec:
    source = data.load_source(configs.data_config(source=source_spec), 'eval')
    for i in range(len(source)):
      yield f'{source_spec} #{i}', source[i]['image']
    return
  files, missing = colorize.find_images(paths)
  for path in missing:
    print(f'skipped {path}: no such file or folder', file=sys.stderr)
  for file in files:
    try:
      yield str(file), images.read_rgb(file)
    except Exception as e:  # decoders raise many types; all mean "not an image we can read"
      print(f'skipped {file}: cannot read it as an image ({type(e).__name__})', file=sys.stderr)


def score(colorizer: inference.Colorizer, named_photos, mean_ab=None):
  """({'model' | 'gray' | 'mean ab': per-photo sums}, grid rows, names)."""
  sums, rows, names = {}, [], []
  candidates = {'gray': np.zeros(2, np.float32)}
  if mean_ab is not None:
    candidates['mean ab'] = np.asarray(mean_ab, np.float32)
  for name, rgb in tqdm(named_photos, desc='evaluate', unit='photo', disable=None):
    output = colorizer(rgb)
    output = output[0] if output.ndim == 4 else output  # the first of several samples
    sums.setdefault('model', []).append(jax.device_get(image_sums(output, rgb)))
    for baseline, ab in candidates.items():
      sums.setdefault(baseline, []).append(
          jax.device_get(image_sums(constant_colour(rgb, ab), rgb)))
    if len(rows) < GRID_ROWS:
      rows.append([np.asarray(constant_colour(rgb, candidates['gray'])), output, rgb])
    names.append(name)
  return sums, rows, names


def _table(results) -> str:
  cells = lambda m, fmt: f"{fmt.format(m['value'])} [{fmt.format(m['low'])}, {fmt.format(m['high'])}]"
  columns = [('PSNR (dB)', 'psnr', '{:.2f}'), ('AuC', 'auc', '{:.4f}'),
             ('AuC rebalanced', 'auc_rebalanced', '{:.4f}'),
             ('colourfulness', 'colourfulness_pred', '{:.1f}'),
             ('ab-std ratio', 'ab_std_ratio', '{:.3f}'),
             ('per-image ab variance', 'image_ab_var_pred', '{:.1f}')]
  rows = [[name, *(cells(m[key], fmt) for _, key, fmt in columns)]
          for name, m in results.items()]
  return report.markdown_table(['colorization', *(header for header, _, _ in columns)], rows)


def _parse_args(argv):
  parser = ArgumentParser(
      prog='python run.py evaluate', allow_abbrev=False,
      description='Score a trained run on photos at full resolution, as colorize writes them, '
                  'with 95%% bootstrap intervals and gray / mean-colour baselines.')
  parser.add_argument('paths', nargs='*', metavar='PATH', help='image files or folders')
  parser.add_argument('--source', help='instead of PATHs: a data source (samples, folder:PATH, '
                      'npz:PATH, a tfds name), its eval split')
  colorize.add_run_arguments(parser)
  parser.add_argument('--out', help='where the evaluation goes (default <workdir>/evaluation)')
  parser.add_argument('--bootstrap', type=int, default=1000, help='resamples (default 1000)')
  args = parser.parse_args(argv)
  if bool(args.paths) == bool(args.source):
    parser.error('pass image PATHs or --source=SPEC (one of the two)')
  if args.bootstrap < 100:
    parser.error(f'--bootstrap={args.bootstrap}: use at least 100 resamples')
  return args


def main(argv) -> int:
  args = _parse_args(argv)
  options = Options(network=args.network, temperature=args.temperature)
  config, workdir, options = inference.run_config(pathlib.Path(args.workdir), options)
  trained, variables = inference.load_trained(workdir, options)
  colorizer = inference.Colorizer(trained, variables, options, args.size)
  out = pathlib.Path(args.out) if args.out else workdir / 'evaluation'
  colorize.check_writable(out)
  sums, rows, names = score(colorizer, photos(args.paths, args.source),
                            training_mean_ab(config, workdir))
  if not names:
    raise UsageError('no photo could be read: pass image files or folders, or --source')
  per_image = {name: _stacked(photo_sums) for name, photo_sums in sums.items()}
  results = {name: stats.bootstrap(sums, evaluate.summarize, args.bootstrap)
             for name, sums in per_image.items()}
  differences = {('model', baseline): stats.paired_difference(
      per_image['model'], per_image[baseline], evaluate.summarize, args.bootstrap)
      for baseline in per_image if baseline != 'model'}
  (out / 'evaluation.json').write_text(json.dumps(
      {'workdir': str(workdir), 'photos': names, 'metrics': results,
       'model_minus': {b: d for (_, b), d in differences.items()}}, indent=2) + '\n')
  report.save_image_grid(out / 'evaluation.png', rows, ['input (L)', 'colorized', 'original'])
  path = report.write_report(out, f'Evaluation of {workdir}', [
      f'{len(names)} photos at full resolution, colorized as `run.py colorize` writes them '
      f"(working size: {args.size or 'the family default'}). Each figure: value over all "
      f'photos [95% bootstrap interval, {args.bootstrap} resamples of the photos]. Baselines: '
      'gray (ab = 0 everywhere) and, where the training data is known, its mean ab on every '
      'pixel; both keep the true L.',
      _table(results), report.METRICS_NOTE, '## The model against the baselines',
      *report.comparison(differences, f'the {len(names)} photos', resamples=args.bootstrap),
      '![evaluation](evaluation.png)'],
      name='evaluation.md')  # never the run's own report.md, whatever --out is
  print(f'evaluated {len(names)} photo(s): {path}')
  return 0
