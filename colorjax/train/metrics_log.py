"""metrics.jsonl (a row per training step) and eval_metrics.jsonl (a row per evaluation while
training): append-only JSON lines, written by process 0, cut back on resume so they always
describe the parameters that exist. A full disk or a kill mid-append can leave the last line
cut short: it is dropped, with a one-line notice, and cut from the file on resume."""

import json
import pathlib
import sys

import numpy as np
from tqdm import tqdm

from colorjax import distributed
from colorjax.errors import UsageError

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
    if not path.exists():
      path.touch()
      return
    rows, end = _parse(path)
    _truncate(path, next((offset for offset, row in rows if row['step'] >= resume_step), end))

  def write(self, rows):
    if self.path is None:
      return
    with self.path.open('a') as f:
      for row in rows:
        f.write(json.dumps(row) + '\n')


def _truncate(path: pathlib.Path, size: int):
  """Cut a log to its first `size` bytes in place: unlike rewriting it, this needs no space
  on a full disk. The last row kept ends with a newline, so appends start a line."""
  with path.open('r+b') as f:
    f.truncate(size)
    f.seek(max(size - 1, 0))
    if size and f.read(1) != b'\n':
      f.write(b'\n')  # that row is whole, but its newline was never written


def read_metrics(workdir, name=TRAIN_FILE) -> list[dict]:
  """The rows of a workdir's metrics.jsonl (or of EVAL_FILE: [] when it never evaluated)."""
  path = pathlib.Path(workdir) / name
  if name == EVAL_FILE and not path.exists():
    return []
  return [row for _, row in _parse(path)[0]]


def _parse(path: pathlib.Path) -> tuple[list[tuple[int, dict]], int]:
  """([(byte offset, row) of each line], the offset where whole lines end) of a JSON-lines
  log. A last line that does not parse was cut short by a full disk or a kill mid-append: it
  is dropped with a one-line notice. Only an append can be cut short, so any other bad line
  (one that is not JSON, or a JSON row without an integer "step") is a UsageError."""
  data = path.read_bytes()
  lines = data.split(b'\n')
  rows, offset = [], 0
  for number, line in enumerate(lines, 1):
    start, offset = offset, offset + len(line) + 1
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except ValueError:
      if any(rest.strip() for rest in lines[number:]):
        raise _damaged(path, number, 'is not JSON') from None
      tqdm.write(f'notice: the last line of {path} was cut short (a full disk or a kill '
                 'while it was written); it is dropped', file=sys.stderr)
      return rows, start
    if not (isinstance(row, dict) and isinstance(row.get('step'), int)
            and not isinstance(row['step'], bool)):
      raise _damaged(path, number, 'is not a row with an integer "step"')
    rows.append((start, row))
  return rows, len(data)


def _damaged(path, number, problem) -> UsageError:
  return UsageError(f'{path}, line {number}, {problem}: it was edited or damaged; delete that '
                    'line (or the file) and run again')


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
