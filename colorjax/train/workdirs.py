"""A workdir holds one run: an exclusive lock for the run that trains there, and its
config.json, bound to the run by its first checkpoint.

The lock is a kernel file lock (fcntl.flock) on <workdir>/.lock, held for the life of the
process, so it is released however the process ends, kill -9 included: a lock file left by
a dead process is simply taken over. The file's text (host, pid, start time) is only for the
message that refuses a second run.

A workdir the run cannot use (a file, a system folder, a read-only folder, a damaged
config.json, a folder deleted while training) is a UsageError naming the problem and the fix.
"""

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket

from colorjax import distributed
from colorjax.errors import UsageError
from colorjax.train import checkpoint

CONFIG_FILE = 'config.json'
LOCK_FILE = '.lock'
_held = {}  # workdir -> open file: the lock lasts as long as this process
# Folders that are never a run's: the root and the top-level system folders themselves, and
# anything inside the kernel's pseudo-filesystems.
SYSTEM_FOLDERS = ('/', '/bin', '/boot', '/etc', '/lib', '/lib64', '/sbin', '/usr', '/var')
PSEUDO_FILESYSTEMS = ('/proc', '/sys', '/dev')
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def check_folder(workdir: pathlib.Path):
  """Refuse, reading only, a workdir that is a file or a system folder: a run writes a lock,
  config.json and checkpoints into it."""
  workdir = pathlib.Path(workdir)
  resolved = workdir.resolve()
  if str(resolved) in SYSTEM_FOLDERS or any(
      resolved.is_relative_to(folder) for folder in PSEUDO_FILESYSTEMS):
    raise UsageError(f'--workdir={workdir} is a system folder ({resolved}), not a run folder: '
                     'pass a folder of its own, e.g. --workdir=runs/NAME')
  existing = next(p for p in (workdir, *workdir.parents) if p.exists())
  if not existing.is_dir():
    raise UsageError(f'--workdir={workdir}: {existing} is a file, not a folder; pass a folder')


@contextlib.contextmanager
def _writing(workdir: pathlib.Path):
  """A workdir that cannot be written (read-only mount, no permission) as one line."""
  try:
    yield
  except OSError as e:
    if e.errno not in _READ_ONLY:
      raise
    raise UsageError(f'--workdir={workdir} cannot be written ({os.strerror(e.errno)}): a run '
                     'writes its lock, config and checkpoints there; pass a writable folder '
                     'or fix its permissions') from None


def acquire(workdir: pathlib.Path):
  """Hold the workdir's lock, or refuse in one line naming the run that holds it."""
  workdir = pathlib.Path(workdir)
  check_folder(workdir)
  key = workdir.resolve()
  if key in _held:
    return
  with _writing(workdir):
    workdir.mkdir(parents=True, exist_ok=True)
    handle = open(workdir / LOCK_FILE, 'a+')
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


def check_held(workdir: pathlib.Path):
  """Refuse to go on in a workdir that was deleted or replaced since this process took it
  (its lock file is gone or another): nothing the run writes would be kept."""
  workdir = pathlib.Path(workdir)
  handle = _held.get(workdir.resolve())
  try:
    same = handle is None or os.path.samestat(os.fstat(handle.fileno()),
                                              os.stat(workdir / LOCK_FILE))
  except FileNotFoundError:
    same = False
  if not workdir.is_dir() or not same:
    raise UsageError(f'{workdir} was deleted or replaced while this run trained, so nothing '
                     'more of it can be saved: run the same command again to start over there '
                     '(or restore the folder from a backup first to resume)')


def _describe(text: str) -> str:
  try:
    holder = json.loads(text)
    return f"host {holder['host']}, pid {holder['pid']}, since {holder['since']}"
  except (ValueError, KeyError, TypeError):
    return 'holder unknown'


# Fields that only change what a finished run evaluates, how long it trains or which steps it
# traces: a run may be resumed or re-evaluated with new values (any block's field of that name).
MAY_CHANGE = ('num_steps', 'epochs', 'eval_batches', 'eval_batch_size', 'report_images',
              'temperatures', 'temperature', 'profile_steps', 'preempt_grace_s')
# init_from is not one: config.json records where a fine-tuned run started, and resuming it
# never reads that run again (train/init_from.py), so the same command resumes it.


def _leaves(tree: dict, prefix=''):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}', value


def read_config(workdir: pathlib.Path) -> dict:
  """The config.json of the run in `workdir` as a dict; one line if it is damaged (a write
  cut short, a hand edit) or unreadable."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  try:
    config = json.loads(path.read_text())
  except (OSError, ValueError) as e:  # ValueError: JSON or UTF-8 cut short
    problem = e.strerror if isinstance(e, OSError) else f'not valid JSON: {e}'
  else:
    if isinstance(config, dict):
      return config
    problem = 'not a JSON object'
  raise UsageError(f'{path} is damaged ({problem}): delete it and run the training command of '
                   'this run again, which rewrites it and resumes, or pass another --workdir')


def check(workdir: pathlib.Path, config):
  """Refuse, reading only, a workdir that is a file, a system folder, or holds a run made with
  another config (or a damaged config.json).

  Only a run that saved a checkpoint (in any of its networks' folders) binds the workdir: a
  command that failed before training (a typo in a value, say) leaves nothing that a
  corrected command would trip over. Fields in MAY_CHANGE may differ, and so may fields a
  newer colorjax added (absent from the saved config; their defaults keep the behaviour that
  run trained with); a field it dropped stops the resume with one line.
  """
  check_folder(workdir)
  path = workdir / CONFIG_FILE
  trained = any(checkpoint.saved_steps(folder.parent) for folder in workdir.rglob('checkpoints'))
  if path.exists() and trained:
    old = dict(_leaves(read_config(workdir)))
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
    with _writing(workdir):
      workdir.mkdir(parents=True, exist_ok=True)
      temporary = path.with_suffix('.tmp')
      temporary.write_text(json.dumps(new, indent=2, sort_keys=True) + '\n')
      temporary.replace(path)  # atomic: another process never reads half a file
