"""One training per workdir: an exclusive lock on <workdir>/.lock that names its holder.

The lock is a kernel file lock (fcntl.flock) held for the life of the process, so it is
released however the process ends, kill -9 included: a lock file left by a dead process is
simply taken over. The file's text (host, pid, start time) is only for the message that
refuses a second run.
"""

import datetime
import fcntl
import json
import os
import pathlib
import socket

from colorjax.errors import UsageError

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
