"""A workdir holds one run: an exclusive lock for the run that trains there, and its
config.json, bound to the run by its first checkpoint.

The lock is a kernel file lock (fcntl.flock) on <workdir>/.lock, held for the life of the
process, so it is released however the process ends, kill -9 included: a lock file left by
a dead process is simply taken over. The file's text (host, pid, start time) is only for the
message that refuses a second run.
"""

import datetime
import fcntl
import json
import os
import pathlib
import socket

from colorjax import distributed
from colorjax.errors import UsageError
from colorjax.train import checkpoint

CONFIG_FILE = 'config.json'
_held = {}  # workdir -> open file: the lock lasts as long as this process


def acquire(workdir: pathlib.Path):
  """Hold the workdir's lock, or refuse in one line naming the run that holds it."""
  workdir = pathlib.Path(workdir)
  key = workdir.resolve()
  if key in _held:
    return
  workdir.mkdir(parents=True, exist_ok=True)
  handle = open(workdir / '.lock', 'a+')
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    handle.seek(0)
    holder = _describe(handle.read())
    handle.close()
    raise UsageError(f'{workdir} is in use by another run ({holder}): wait for it to end, or '
                     'pass another --workdir') from None
  handle.seek(0)
  handle.truncate()
  handle.write(json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                           'since': datetime.datetime.now().isoformat(timespec='seconds')}))
  handle.flush()
  _held[key] = handle


def _describe(text: str) -> str:
  try:
    holder = json.loads(text)
    return f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
  except (ValueError, KeyError, TypeError):
    return 'holder unknown'


# Fields that only change what a finished run evaluates, how long it trains or which steps it
# traces: a run may be resumed or re-evaluated with new values (any block's field of that name).
MAY_CHANGE = ('num_steps', 'epochs', 'eval_batches', 'eval_batch_size', 'report_images',
              'temperatures', 'temperature', 'profile_steps')


def _leaves(tree: dict, prefix=''):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}', value


def check(workdir: pathlib.Path, config):
  """Refuse, reading only, a workdir that is a file or holds a run made with another config.

  Only a run that saved a checkpoint (in any of its networks' folders) binds the workdir: a
  command that failed before training (a typo in a value, say) leaves nothing that a
  corrected command would trip over. Fields in MAY_CHANGE may differ, and so may fields a
  newer colorjax added (absent from the saved config; their defaults keep the behaviour that
  run trained with); a field it dropped stops the resume with one line.
  """
  if workdir.exists() and not workdir.is_dir():
    raise UsageError(f'--workdir={workdir} is a file, not a folder: pass a folder')
  path = workdir / CONFIG_FILE
  trained = any(checkpoint.saved_steps(folder.parent) for folder in workdir.rglob('checkpoints'))
  if path.exists() and trained:
    old = dict(_leaves(json.loads(path.read_text())))
    new = dict(_leaves(json.loads(config.to_json_best_effort())))
    differ = sorted(k for k in old  # a field absent from `old` was added since: its default
                    if k.rpartition('.')[2] not in MAY_CHANGE and old[k] != new.get(k))
    gone = [k for k in differ if k not in new]
    if gone:
      raise UsageError(
          f"{workdir} holds a run made by an earlier colorjax, whose {', '.join(gone)} no "
          'longer exist: it cannot be resumed exactly; pass a new --workdir (run.py evaluate '
          'and colorize still read it)')
    if differ:
      raise UsageError(
          f"{workdir} holds a run made with a different config ({', '.join(differ)} differ); "
          'pass a new --workdir, or delete that folder to start over')


def bind(workdir: pathlib.Path, config):
  """check, then write config.json (process 0)."""
  check(workdir, config)
  path = workdir / CONFIG_FILE
  new = json.loads(config.to_json_best_effort())
  if distributed.is_main():  # every process checks (and stops with its error); one writes
    workdir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix('.tmp')
    temporary.write_text(json.dumps(new, indent=2, sort_keys=True) + '\n')
    temporary.replace(path)  # atomic: another process never reads half a file
