"""SIGTERM and SIGHUP while training: the step in flight is saved, resuming from it ends bit
for bit where an unbroken run ends; a save that overruns the grace period leaves the last
checkpoint. (End to end, with run.py's exit status and line: tests/test_faults.py.)"""

import errno
import os
import signal
import time

import jax
import numpy as np
import pytest

from colorjax.cli import main
from colorjax.configs import Loop
from colorjax.train import checkpoint, loop
from tests.train import tiny_run

LOOP = Loop(8, checkpoint_every=4, log_every=4, max_to_keep=3)


def _fit(workdir, loop_config=LOOP, signal_at=None, signum=signal.SIGTERM, calls=None):
  """The tiny run, sent `signum` by itself while step `signal_at` is in flight."""
  def advance(state, k):
    if k == signal_at:
      os.kill(os.getpid(), signum)
    if calls is not None:
      calls.append(k)
    return tiny_run.STEP(state, tiny_run.batch(k))

  return loop.fit(workdir, tiny_run.fresh_state(), advance, loop_config)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGHUP], ids=['SIGTERM', 'SIGHUP'])
def test_a_signal_saves_the_step_in_flight_and_the_resume_is_bitwise_equal(tmp_path, signum):
  unbroken = _fit(tmp_path / 'unbroken')
  before = signal.getsignal(signum)
  with pytest.raises(loop.Preempted) as stopped:
    _fit(tmp_path / 'resumed', signal_at=5, signum=signum)
  assert (stopped.value.signum, stopped.value.step) == (signum, 6)
  assert checkpoint.saved_steps(tmp_path / 'resumed') == [6, 4]
  assert signal.getsignal(signum) is before  # fit put the handler back
  calls = []
  resumed = _fit(tmp_path / 'resumed', calls=calls)
  assert calls == [6, 7]
  for a, b in zip(jax.tree.leaves(unbroken), jax.tree.leaves(resumed)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  logged = [row['step'] for row in tiny_run.rows(tmp_path / 'resumed/metrics.jsonl')]
  assert logged == list(range(8))  # the steps before the signal were logged before saving


def test_a_save_that_overruns_the_grace_period_leaves_the_last_checkpoint(
    tmp_path, monkeypatch, capsys):
  exits = []
  monkeypatch.setattr(os, '_exit', exits.append)
  real_save = checkpoint.Checkpoints.save

  def slow_save(self, step, state, metrics=None):
    if step == 6:  # the preemption's save: still running when the grace period ends
      deadline = time.monotonic() + 10
      while not exits and time.monotonic() < deadline:
        time.sleep(0.01)
      return
    real_save(self, step, state, metrics)

  monkeypatch.setattr(checkpoint.Checkpoints, 'save', slow_save)
  with pytest.raises(loop.Preempted):
    _fit(tmp_path, Loop(8, checkpoint_every=4, log_every=4, preempt_grace_s=0.2), signal_at=5)
  assert exits == [128 + signal.SIGTERM]
  assert 'could not be saved within preempt_grace_s=0.2 s' in capsys.readouterr().err
  assert checkpoint.saved_steps(tmp_path) == [4]


def test_a_preemption_whose_save_fails_raises_the_save_error_not_saved(tmp_path, monkeypatch):
  """The disk fills during the preemption's save (Orbax's background write of step 6): the
  run must not say step 6 is saved."""
  makedirs = os.makedirs

  def full_at_step_6(path, *args, **kwargs):
    if '6.orbax-checkpoint-tmp' in str(path):
      raise OSError(errno.ENOSPC, 'No space left on device', str(path))
    return makedirs(path, *args, **kwargs)

  monkeypatch.setattr(os, 'makedirs', full_at_step_6)
  with pytest.raises(Exception) as stopped:
    _fit(tmp_path, signal_at=5)
  assert not isinstance(stopped.value, loop.Preempted)
  assert main._storage_fault(stopped.value) is not None  # run.py: the full disk, one line
  assert checkpoint.saved_steps(tmp_path) == [4]
