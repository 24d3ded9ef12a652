"""metrics.jsonl (a row per training step) and eval_metrics.jsonl (a row per evaluation while
training): append-only JSON lines, written by process 0, cut back on resume so they always
describe the parameters that exist."""

import json
import pathlib

import numpy as np

from colorjax import distributed

TRAIN_FILE = 'metrics.jsonl'
EVAL_FILE = 'eval_metrics.jsonl'


class MetricsLog:
  """One of a workdir's metric files. On resume, rows from `resume_step` on are dropped (an
  eval row's step counts the updates before it, so an evaluation of the checkpoint's own
  state is kept with `resume_step` one past it)."""

  def __init__(self, path: pathlib.Path, resume_step: int):
    self.path = path if distributed.is_main() else None
    if self.path is None:
      return
    kept = []
    if path.exists():
      kept = [line for line in path.read_text().splitlines()
              if line and json.loads(line)['step'] < resume_step]
    path.write_text(''.join(line + '\n' for line in kept))

  def write(self, rows):
    if self.path is None:
      return
    with self.path.open('a') as f:
      for row in rows:
        f.write(json.dumps(row) + '\n')


def read_metrics(workdir, name=TRAIN_FILE) -> list[dict]:
  """The rows of a workdir's metrics.jsonl (or of EVAL_FILE: [] when it never evaluated)."""
  path = pathlib.Path(workdir) / name
  if name == EVAL_FILE and not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line]


def metric_rows(first_step, metrics, steps_per_call) -> list[dict]:
  """Metrics of one advance call (leading axis = steps, or scalars for one step) -> a row
  per step."""
  metrics = {k: np.asarray(v).reshape(steps_per_call, -1) for k, v in metrics.items()}
  rows = []
  for i in range(steps_per_call):
    row = {'step': first_step + i}
    for k, v in metrics.items():
      row[k] = v[i].tolist() if v.shape[1] > 1 else float(v[i, 0])
    rows.append(row)
  return rows


def losses(row) -> dict:
  """The loss entries of a metrics row ('loss', or 'd_loss' and 'g_loss' of a GAN)."""
  return {k: v for k, v in row.items() if k.endswith('loss')}
