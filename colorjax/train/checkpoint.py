"""Orbax checkpoints of a run: saved by the one run that trains in a workdir (Checkpoints),
read by anyone (restore_newest_readable, read_checkpoint), also while that run trains.

A step folder is <workdir>/<folder>/<step>, written by a CheckpointManager as one item,
'default', and renamed into place when complete: a kill mid-save leaves the last good one.
Reads never build a manager: building one stats every step folder, and fails when the run
training there deletes one meanwhile (max_to_keep).

Orbax reports a failed save or read twice: it logs it, with a traceback from each of its
threads, then raises it; and a save or read it aborts leaves tensorstore callbacks for an
event loop it has closed, each of which prints `RuntimeError: Event loop is closed`, and read
coroutines dropped with their error, each printed as "Exception ignored in: <coroutine ...>".
Only the error raised is reported (_quiet_orbax): a full disk is then one line, not hundreds.
"""

import logging
import os
import pathlib
import sys
import tempfile

import jax
import orbax.checkpoint as ocp
from tqdm import tqdm

from colorjax import distributed
from colorjax.errors import UsageError

BEST_FOLDER = 'checkpoints_best'


def saved_steps(workdir, folder: str = 'checkpoints') -> list[int]:
  """The steps of the complete checkpoints in <workdir>/<folder>, newest first. A save
  killed before its rename leaves only an `N.orbax-checkpoint-tmp-*` folder: not one."""
  directory = pathlib.Path(workdir) / folder
  if not directory.is_dir():
    return []
  return sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit()), reverse=True)


def _not_an_orbax_failure(record: logging.LogRecord) -> bool:
  return record.levelno < logging.ERROR or f'{os.sep}orbax{os.sep}' not in record.pathname


def _left_by_an_aborted_read(unraisable) -> bool:
  """An error no one will see raised: a callback for the event loop Orbax closed, or one of
  Orbax's read coroutines dropped with the error of the files it was reading."""
  error, source = unraisable.exc_value, getattr(unraisable.object, 'cr_code', None)
  return ((isinstance(error, RuntimeError) and str(error) == 'Event loop is closed')
          or (source is not None and f'{os.sep}orbax{os.sep}' in source.co_filename))


def _quiet_orbax():
  """Mute, in this process, Orbax's logs of the failures it raises and the errors of the
  callbacks its aborted reads and saves leave behind (the module's docstring). Idempotent;
  the hook is put back when something (a test runner) replaced it."""
  logging.getLogger('absl').addFilter(_not_an_orbax_failure)  # once: addFilter checks
  if getattr(sys.unraisablehook, 'mutes_aborted_reads', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if not _left_by_an_aborted_read(unraisable):
      previous(unraisable)

  hook.mutes_aborted_reads = True
  sys.unraisablehook = hook


def _step_reader(handler) -> ocp.Checkpointer:
  """Reads one step folder as CheckpointManager writes it (its one item, 'default')."""
  _quiet_orbax()
  return ocp.Checkpointer(ocp.CompositeCheckpointHandler(default=handler))


def _shapes_by_path(tree) -> dict[str, tuple]:
  """'params/Conv_0/kernel' -> shape, for any pytree (dataclass fields, dict keys and
  sequence indices all become path parts, as in Orbax's metadata)."""
  def part(key):
    return str(getattr(key, 'name', getattr(key, 'key', getattr(key, 'idx', key))))
  return {'/'.join(map(part, path)): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def checkpoint_mismatch(step_dir: pathlib.Path, target, partial: bool = False) -> str | None:
  """The first difference between the arrays saved in `step_dir` and `target`'s (a state or
  its eval_shape), in words; None when they match. With `partial`, `target` names a part of
  what was saved (the variables a prediction needs) and the rest is not compared. Checked
  before restoring, where Orbax would fail deep inside its asynchronous reads."""
  with _step_reader(ocp.StandardCheckpointHandler()) as reader:
    saved = _shapes_by_path(reader.metadata(step_dir).item_metadata['default'].tree)
  wanted = _shapes_by_path(target)
  for path in sorted(set(wanted) if partial else set(saved) | set(wanted)):
    if saved.get(path) != wanted.get(path):
      return (f"{path}: shape {wanted.get(path, 'absent')} expected, "
              f"{saved.get(path, 'absent')} saved")
  return None


def read_checkpoint(step_dir: pathlib.Path, target, partial: bool = False):
  """The checkpoint in `step_dir` (<folder>/<step>), shaped as the pytree `target`. With
  `partial`, `target` (nested dicts, as Orbax stores the state) names the part to read,
  e.g. {'params': ..., 'batch_stats': ...} of a TrainState: the rest (optimizer moments)
  is never read from disk."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  if partial:
    handler = ocp.PyTreeCheckpointHandler()
    args = ocp.args.PyTreeRestore(
        abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
        partial_restore=True)
  else:
    handler, args = ocp.StandardCheckpointHandler(), ocp.args.StandardRestore(abstract)
  with _step_reader(handler) as reader:
    return reader.restore(step_dir, args=ocp.args.Composite(default=args))['default']


# Status codes of a read error (tensorstore's, in its exception's text) that say nothing of
# the files: the same read may succeed later.
_TRANSIENT_CODES = ('RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED',
                    'PERMISSION_DENIED', 'ABORTED', 'CANCELLED')


def _causes(error: BaseException):
  while error is not None:
    yield error
    error = error.__cause__ or error.__context__


def is_damaged(error: BaseException) -> bool:
  """True when a failed read says the checkpoint's files are damaged (truncated, zeroed,
  missing, not JSON): a format error of Orbax or its codecs (ValueError, KeyError, ...).
  False for what may pass (out of memory, a permission, an I/O error, a timeout), which must
  never set a good checkpoint aside."""
  causes = list(_causes(error))
  transient = any(isinstance(e, MemoryError) or (isinstance(e, OSError)
                                                  and not isinstance(e, FileNotFoundError))
                  or any(code in str(e) for code in _TRANSIENT_CODES) for e in causes)
  return not transient and any(
      isinstance(e, (ValueError, KeyError, EOFError, FileNotFoundError)) for e in causes)


def _files(step_dir: pathlib.Path) -> list[pathlib.Path]:
  """Every file in a step folder. One of them gone after a failed read means the folder is
  being deleted (a run training there prunes it, file by file, the folder itself last), not
  that it is damaged."""
  return [pathlib.Path(root) / name for root, _, names in os.walk(step_dir) for name in names]


def restore_newest_readable(directory: pathlib.Path, target, *, set_aside: bool = False,
                            partial: bool = False):
  """(state, step) of the newest checkpoint in `directory` that reads, or (target, None)
  when none does.

  A newer checkpoint whose files are damaged (is_damaged) is skipped with a one-line
  warning; with `set_aside` (the trainer, which will save that step again) it is renamed
  `corrupt-N`, kept for inspection. Any other error propagates: it says nothing of the
  files. One whose arrays do not fit `target` is a UsageError. A step that vanishes while it
  is read (deleted by a run training there, even half-way) is skipped. `partial` as in
  read_checkpoint."""
  directory = pathlib.Path(directory).absolute()
  for step in saved_steps(directory.parent, directory.name):
    step_dir = directory / str(step)
    files = _files(step_dir)
    try:
      mismatch = checkpoint_mismatch(step_dir, target, partial)
      if mismatch is None:
        return read_checkpoint(step_dir, target, partial), step
    except Exception as e:
      if not all(f.exists() for f in files) or not step_dir.exists():
        continue
      if not is_damaged(e):
        raise
      if distributed.is_main():
        tqdm.write(f'warning: checkpoint {step} in {directory} cannot be read '
                   f'({type(e).__name__}); using the one before it', file=sys.stderr)
        if set_aside:
          step_dir.rename(directory / f'corrupt-{step}')
      continue
    raise UsageError(f'the checkpoint in {directory} does not match the config.json beside '
                     f'it ({mismatch}); pass the workdir it was trained in')
  return target, None


def _check_writable(directory: pathlib.Path):
  """Make `directory` and a file in it, or refuse in one line: a read-only folder stops the
  run before it trains, not at its first save."""
  try:
    directory.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryFile(dir=directory).close()
  except OSError as e:
    raise UsageError(f'checkpoints cannot be written in {directory} ({e.strerror}): make it '
                     'writable (or free space), or pass another --workdir') from None


class Checkpoints:
  """Orbax CheckpointManager in <workdir>/checkpoints, for the run that trains there; saves
  are atomic (written to a temporary folder and renamed), so a kill mid-save leaves the last
  good checkpoint. Anyone else reads with restore_newest_readable.

  `keep_period` keeps every checkpoint at a multiple of it besides the `max_to_keep` newest
  (milestones). With `best_metric`, Orbax keeps the `max_to_keep` best by the metrics each
  save carries (`best_mode` 'max' or 'min'), not the newest: so the best live in a folder of
  their own (BEST_FOLDER), and resuming always reads the newest from checkpoints/."""

  def __init__(self, workdir: pathlib.Path, max_to_keep: int | None, *,
               folder='checkpoints', keep_period=0, best_metric='', best_mode='max'):
    self.directory = (pathlib.Path(workdir) / folder).absolute()
    _check_writable(self.directory)
    _quiet_orbax()
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, keep_period=keep_period or None,
            best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
            best_mode=best_mode))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def resume(self, target):
    """(state, step) of the newest readable checkpoint, damaged newer ones set aside
    (restore_newest_readable); (target, None) when none reads."""
    state, step = restore_newest_readable(self.directory, target, set_aside=True)
    self.manager.reload()
    return state, step

  def save(self, step: int, state, metrics: dict | None = None):
    self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)

  def wait(self):
    """Block until the save in flight is complete; raises its error when it failed."""
    self.manager.wait_until_finished()

  def drop_after(self, step: int):
    """Delete the checkpoints past `step`: a killed run's, which its resumed run saves again
    (and, for the best, scores the same: its evaluations repeat exactly)."""
    for saved in self.manager.all_steps():
      if saved > step:
        self.manager.delete(saved)

  def close(self, failing: bool = False):
    """Wait for the save in flight and close. `failing`: the run already stops on an error,
    which a failure of that save (its folder deleted, the disk full) must not hide; a save
    that did not finish is never read (saves are renamed into place when complete)."""
    try:
      self.wait()
      self.manager.close()
    except Exception:
      if not failing:
        raise
