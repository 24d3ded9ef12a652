"""Checkpoints: an interrupted first save is none, a damaged newest one is set aside (only a
damaged one), a reader gets a whole checkpoint while the run training there prunes steps,
and a partial read returns just the variables prediction needs."""

import errno
import itertools
import os
import pathlib
import shutil
import sys
import tempfile
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax import configs, families, inference
from colorjax.configs import Loop
from colorjax.errors import UsageError
from colorjax.families import spec
from colorjax.train import checkpoint, loop, metrics_log
from tests.train import tiny_run


def _fit_counter(workdir, num_steps):
  """fit() on a state that counts its steps: w = number of steps taken."""
  return loop.fit(workdir, {'w': jnp.zeros(64)},
                  lambda s, step: ({'w': s['w'] + 1}, {'loss': jnp.float32(1.0)}),
                  Loop(num_steps, checkpoint_every=2, log_every=2, max_to_keep=3))


def _truncate_largest_file(folder: pathlib.Path):
  largest = max((p for p in folder.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  largest.write_bytes(largest.read_bytes()[:largest.stat().st_size // 2])


def test_a_checkpoint_folder_with_only_an_interrupted_first_save_is_empty(tmp_path):
  (tmp_path / 'checkpoints' / '10.orbax-checkpoint-tmp-1234').mkdir(parents=True)
  assert checkpoint.saved_steps(tmp_path) == []
  network = families.network_spec(configs.load_config('norm_ablation'), tmp_path)
  with pytest.raises(UsageError, match='no checkpoint in'):
    inference._restore(network)


def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
  _fit_counter(tmp_path, 4)
  _truncate_largest_file(tmp_path / 'checkpoints' / '4')
  state, step = checkpoint.restore_newest_readable(tmp_path / 'checkpoints', {'w': jnp.zeros(64)})
  assert step == 2 and float(state['w'][0]) == 2.0
  assert 'checkpoint 4 in' in capsys.readouterr().err
  state = _fit_counter(tmp_path, 6)  # resumes from 2, sets 4 aside, trains on to 6
  assert float(state['w'][0]) == 6.0
  assert (tmp_path / 'checkpoints' / 'corrupt-4').is_dir()
  assert checkpoint.saved_steps(tmp_path)[0] == 6
  assert [row['step'] for row in metrics_log.read_metrics(tmp_path)] == list(range(6))


@pytest.mark.parametrize('error', [MemoryError(), PermissionError(13, 'Permission denied'),
                                   OSError(5, 'Input/output error'),
                                   ValueError('RESOURCE_EXHAUSTED: out of memory')],
                         ids=['out of memory', 'permission', 'I/O error', 'tensorstore OOM'])
def test_a_read_that_fails_for_another_reason_sets_nothing_aside(tmp_path, monkeypatch, error):
  """Only a damaged checkpoint is renamed corrupt-N: a good one whose read failed for a
  reason that may pass is left as it is, and the error propagates."""
  _fit_counter(tmp_path, 4)

  def failing_read(*args, **kwargs):
    raise error

  monkeypatch.setattr(checkpoint, 'read_checkpoint', failing_read)
  with pytest.raises(type(error)):
    checkpoint.restore_newest_readable(tmp_path / 'checkpoints', {'w': jnp.zeros(64)},
                                       set_aside=True)
  assert checkpoint.saved_steps(tmp_path) == [4, 2]
  assert not list((tmp_path / 'checkpoints').glob('corrupt-*'))


@pytest.mark.parametrize('damage', ['truncated', 'not JSON', 'missing file'])
def test_damaged_files_are_recognized_as_such(tmp_path, damage):
  _fit_counter(tmp_path, 2)
  step_dir = tmp_path / 'checkpoints' / '2'
  if damage == 'truncated':
    _truncate_largest_file(step_dir)
  elif damage == 'not JSON':
    metadata = next(step_dir.rglob('_METADATA'))
    metadata.write_text(metadata.read_text()[:10])
  else:
    next(step_dir.rglob('manifest.ocdbt')).unlink()
  with pytest.raises(Exception) as error:
    checkpoint.read_checkpoint(step_dir, {'w': jnp.zeros(64)})
  assert checkpoint.is_damaged(error.value)


def test_a_read_only_checkpoint_folder_is_refused_before_training(tmp_path, monkeypatch):
  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, 'Read-only file system')

  monkeypatch.setattr(tempfile, 'TemporaryFile', read_only)
  calls = []
  with pytest.raises(UsageError, match=r'checkpoints cannot be written in .*checkpoints '
                                       r'\(Read-only file system\): make it writable'):
    tiny_run.fit(tmp_path, Loop(2, checkpoint_every=2, log_every=1), calls=calls)
  assert calls == []


def test_a_partial_read_returns_only_what_prediction_needs(tmp_path):
  """A TrainState's params and batch statistics, equal to the saved ones, without its
  optimizer state."""
  state = tiny_run.fit(tmp_path, Loop(2, checkpoint_every=2, log_every=1))
  target = {'params': state.params, 'batch_stats': state.batch_stats}
  saved, step = checkpoint.restore_newest_readable(tmp_path / 'checkpoints', target,
                                                    partial=True)
  assert step == 2 and set(saved) == {'params', 'batch_stats'}  # no opt_state, step, key
  for a, b in zip(jax.tree.leaves(saved['params']), jax.tree.leaves(state.params)):
    assert np.array_equal(np.asarray(a), np.asarray(b))


def _coroutine_of(package: str):
  """A coroutine whose code lives in a file of `package`."""
  namespace = {}
  exec(compile('async def read():\n  pass\n', os.path.join(os.sep, 'x', package, 'read.py'),
               'exec'), namespace)
  return namespace['read']()


def test_what_an_aborted_read_leaves_is_muted_and_nothing_else(monkeypatch):
  """The unraisable errors an aborted Orbax read leaves (a closed event loop's, a dropped read
  coroutine's) never reach the terminal; any other unraisable error still does."""
  shown = []
  monkeypatch.setattr(sys, 'unraisablehook', shown.append)
  checkpoint._quiet_orbax()
  orbax_read, our_read = _coroutine_of('orbax'), _coroutine_of('colorjax')
  ours = types.SimpleNamespace(exc_value=ValueError('ours'), object=our_read)
  for unraisable in (types.SimpleNamespace(exc_value=RuntimeError('Event loop is closed'),
                                           object=None),
                     types.SimpleNamespace(exc_value=Exception('reading array'), object=orbax_read),
                     ours):
    sys.unraisablehook(unraisable)
  orbax_read.close()
  our_read.close()
  assert shown == [ours]


def _unlink_files(folder):
  """The first half of an rmtree: every file gone, the folders still there (what a reader
  on another thread may see when its read fails)."""
  for root, _, names in os.walk(folder):
    for name in names:
      os.unlink(os.path.join(root, name))


# A read that Orbax aborts (its files deleted under it) leaves a callback scheduled on an
# event loop it has closed ('Event loop is closed', printed as unraisable) and read coroutines
# dropped with their error ('Exception ignored in: <coroutine ...>'): both are muted.
@pytest.mark.filterwarnings('error::pytest.PytestUnraisableExceptionWarning')
@pytest.mark.parametrize('prune', [shutil.rmtree, _unlink_files], ids=['whole', 'half-way'])
def test_a_reader_skips_a_step_deleted_at_any_moment_of_the_read(tmp_path, monkeypatch, capsys,
                                                                  prune):
  """A run training in the folder deletes its oldest step (max_to_keep) at any moment. Here
  step 6 vanishes at the n-th time Python stats it, for every n up to the end of the read,
  wholly or only its files (the deletion still under way when the read fails): the read
  returns 6 or 4, whole, without a warning (reading through a CheckpointManager failed at
  the n where 6 went between Orbax listing the steps and stat-ing them)."""
  _fit_counter(tmp_path / 'pristine', 6)  # keeps 2, 4 and 6
  real_stat = os.stat
  for n in itertools.count(1):
    workdir = shutil.copytree(tmp_path / 'pristine', tmp_path / str(n))
    doomed, touches = str((workdir / 'checkpoints' / '6').absolute()), []

    def pruning_stat(path, *args, **kwargs):
      name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ''
      if name == doomed or name.startswith(doomed + os.sep):
        touches.append(name)
        if len(touches) == n:
          prune(doomed)
      return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, 'stat', pruning_stat)
    reader = spec.NetworkSpec(workdir, lambda: {'w': jnp.zeros(64)}, lambda saved: saved,
                              None, (1, 1))
    saved, _ = inference._restore(reader)
    monkeypatch.setattr(os, 'stat', real_stat)
    deleted = len(touches) >= n
    assert float(saved['w'][0]) in ((4.0, 6.0) if deleted else (6.0,)), n
    assert 'cannot be read' not in capsys.readouterr().err, n
    if not deleted:
      break
