"""The softmax and regression runs of Zhang et al.'s network in one table, read from their
metrics_eval.json, and their paired difference on the same held-out images (each run's
per_image_eval.npz, the decoding colorize uses). Experiment: zhang_compare."""

import pathlib

import numpy as np

from colorjax import configs
from colorjax.errors import UsageError
from colorjax.eval import evaluator, report


def _evaluated(run):
  path = pathlib.Path(run) / report.METRICS_FILE
  if not path.is_file():
    raise UsageError(f'{path} not found: train and evaluate that run first (its experiment '
                     'writes metrics_eval.json), or set --config.runs')
  return report.load_metrics(run)


def _paired(runs) -> tuple[dict, int] | None:
  """({(A, B): difference}, images) of the first run's default decoding against the second's,
  or None when a run has no per-image sums (it was evaluated before they were saved)."""
  per_image = {}
  for run in runs:
    if not (pathlib.Path(run) / report.PER_IMAGE_FILE).is_file():
      return None
    (decoding, sums), = report.load_per_image(run).items()
    per_image[f'`{run}` {decoding}'] = sums
  (a, sums_a), (b, sums_b) = per_image.items()
  if not (sums_a['ab_true'].shape == sums_b['ab_true'].shape
          and np.array_equal(sums_a['ab_true'], sums_b['ab_true'])):
    raise UsageError(f'{runs[0]} and {runs[1]} were evaluated on different images (their true '
                     'colours differ): evaluate both on the same eval split to compare them')
  return evaluator.paired_differences(per_image, [(a, b)]), len(sums_a['ab_true'])


def check(config):
  configs.check_values(config)
  if len(config.runs) != 2:
    raise UsageError(f'--config.runs names {len(config.runs)} runs: compare exactly 2')


def main(config, workdir):
  check(config)
  metrics = {}
  for run in config.runs:
    for decoding, m in _evaluated(run).items():
      metrics[f'`{run}`', decoding] = m
  sections = [report.metrics_table(metrics, label=('run', 'decoding')), report.METRICS_NOTE,
              'The write-up measured an ab-std ratio of about 0.47 (3.23 / 6.90) for MSE '
              'regression.']
  paired = _paired(config.runs)
  if paired is None:
    sections.append('No paired comparison: a run lacks per_image_eval.npz (run its command '
                    'again to evaluate it anew).')
  else:
    differences, images = paired
    sections += ['## Paired difference', *report.comparison(
        differences, f'the {images} evaluation images')]
  path = report.write_report(workdir, 'Comparison', sections)
  print(path.read_text())
