"""The softmax and regression runs of Zhang et al.'s network in one table, read from their
metrics_eval.json. Experiment: zhang_compare."""

import json
import pathlib

from colorjax import report
from colorjax.errors import UsageError


def main(config, workdir):
  metrics = {}
  for run in config.runs:
    path = pathlib.Path(run) / 'metrics_eval.json'
    if not path.is_file():
      raise UsageError(f'{path} not found: train and evaluate that run first (its experiment '
                       'writes metrics_eval.json), or set --config.runs')
    for decoding, m in json.loads(path.read_text()).items():
      metrics[f'`{run}`', decoding] = m
  path = report.write_report(workdir, 'Comparison', [
      report.metrics_table(metrics, label=('run', 'decoding')), report.METRICS_NOTE,
      'The write-up measured an ab-std ratio of about 0.47 (3.23 / 6.90) for MSE regression.'])
  print(path.read_text())
