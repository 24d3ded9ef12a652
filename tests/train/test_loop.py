"""loop.fit: resume bit for bit after a kill, the NaN guard, evaluation while training with
best and milestone checkpoints, and the loop's one-line mistakes."""

import dataclasses
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax import configs, mesh
from colorjax.configs import Loop
from colorjax.data import pipeline, sources
from colorjax.errors import UsageError
from colorjax.train import checkpoint, loop, metrics_log, throughput, train_state, workdirs
from tests.train import tiny_run
from tests.train.tiny_run import LOSS, MODEL, TX, Killed


def _fit(workdir, num_steps=8, **options):
  return tiny_run.fit(workdir, Loop(num_steps, checkpoint_every=3, log_every=1, max_to_keep=2),
                      **options)


def test_resume_after_a_kill_ends_bitwise_equal_to_an_unbroken_run(tmp_path):
  unbroken = _fit(tmp_path / 'unbroken')
  with pytest.raises(Killed):
    _fit(tmp_path / 'resumed', kill_at=7)  # after the checkpoint of step 6, mid-way on
  calls = []
  resumed = _fit(tmp_path / 'resumed', calls=calls)
  assert calls == [6, 7]  # it continued from the checkpoint, not from scratch
  for a, b in zip(jax.tree.leaves(unbroken), jax.tree.leaves(resumed)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  logged = [row['step'] for row in tiny_run.rows(tmp_path / 'resumed/metrics.jsonl')]
  assert logged == list(range(8))  # no step logged twice, none missing


def test_a_finished_run_is_not_retrained(tmp_path):
  first = _fit(tmp_path)
  calls = []
  again = _fit(tmp_path, calls=calls)
  assert calls == []
  assert np.array_equal(first.params['Conv3x3_2']['bias'], again.params['Conv3x3_2']['bias'])


def test_nan_loss_stops_the_run_and_the_last_checkpoint_restores(tmp_path):
  poison_from = 4

  def poisoned_loss(params, batch_stats, batch, key):
    loss, aux = LOSS(params, batch_stats, batch, key)
    return loss * jnp.where(batch['poison'], jnp.nan, 1.0), aux

  step = jax.jit(train_state.make_train_step(poisoned_loss, TX))

  def advance(state, k):
    return step(state, {**tiny_run.batch(k), 'poison': np.asarray(k >= poison_from)})

  with pytest.raises(loop.Diverged, match=f'at step {poison_from}.*checkpoint \\(step 3\\)'):
    loop.fit(tmp_path, tiny_run.fresh_state(), advance, Loop(9, checkpoint_every=3, log_every=3))
  checkpoints = checkpoint.Checkpoints(tmp_path, max_to_keep=2)
  assert checkpoints.latest_step() == 3
  restored = checkpoint.read_checkpoint(checkpoints.directory / '3', tiny_run.fresh_state())
  checkpoints.close()
  clean = _fit(tmp_path / 'clean', num_steps=3)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.params))
  for a, b in zip(jax.tree.leaves(clean.params), jax.tree.leaves(restored.params)):
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_workdir_deleted_while_training_stops_the_run_with_one_line(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  workdirs.acquire(workdir)

  def advance(state, k):
    if k == 4:
      shutil.rmtree(workdir)
    return tiny_run.STEP(state, tiny_run.batch(k))

  with pytest.raises(UsageError, match='was deleted or replaced while this run trained'):
    loop.fit(workdir, tiny_run.fresh_state(), advance, Loop(9, checkpoint_every=9, log_every=1))
  assert not workdir.exists()  # the check comes before any write that would re-create it


def test_a_workdir_deleted_between_the_check_and_a_write_is_the_same_one_line(
    tmp_path, monkeypatch):
  """The race the check cannot close: the folder goes after it, and the next write fails
  with FileNotFoundError. The run names the deleted workdir, not that error."""
  workdir = tmp_path / 'run'
  workdir.mkdir()
  workdirs.acquire(workdir)
  write = metrics_log.MetricsLog.write

  def deleted_first(self, rows):
    if rows[-1]['step'] == 4:
      shutil.rmtree(workdir)
    write(self, rows)

  monkeypatch.setattr(metrics_log.MetricsLog, 'write', deleted_first)
  with pytest.raises(UsageError, match='was deleted or replaced while this run trained'):
    loop.fit(workdir, tiny_run.fresh_state(), lambda state, k: tiny_run.STEP(
        state, tiny_run.batch(k)), Loop(9, checkpoint_every=9, log_every=1))


def test_schedule_must_align_with_steps_per_call(tmp_path):
  with pytest.raises(UsageError, match='checkpoint_every=5 must be a positive multiple'):
    loop.fit(tmp_path, None, None, Loop(10, steps_per_call=2, checkpoint_every=5))


def _fit_on_pipeline(workdir, kill_at=None):
  """The tiny CNN trained data-parallel on batches from the input pipeline."""
  config = configs.data_config(crop=16, batch_size=8)
  data_mesh = mesh.data_mesh()
  source = sources.load_source(config, 'train')
  step = mesh.shard_train_step(train_state.make_train_step(LOSS, TX), data_mesh)

  def batches_from(start):
    return pipeline.prefetch_to_device(pipeline.train_batches(source, config, start), data_mesh)

  advance = train_state.advance_with_batches(step, batches_from)

  def killable(state, k):
    if k == kill_at:
      raise Killed
    return advance(state, k)

  state = mesh.replicate(
      train_state.init_state(MODEL, TX, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1))),
      data_mesh)
  return loop.fit(workdir, state, killable, Loop(6, checkpoint_every=2, log_every=2))


@pytest.mark.slow
def test_training_on_the_pipeline_resumes_with_the_same_batches(tmp_path, caplog):
  with jax.log_compiles(True), caplog.at_level(logging.WARNING):
    unbroken = _fit_on_pipeline(tmp_path / 'unbroken')
  compiles = [r for r in caplog.records if 'Compiling jit(train_step)' in r.getMessage()]
  assert len(compiles) == 1  # six steps, one compile
  with pytest.raises(Killed):
    _fit_on_pipeline(tmp_path / 'resumed', kill_at=3)
  resumed = _fit_on_pipeline(tmp_path / 'resumed')
  for a, b in zip(jax.tree.leaves(unbroken.params), jax.tree.leaves(resumed.params)):
    assert np.array_equal(np.asarray(a), np.asarray(b))


# --- evaluation while training, best and milestone checkpoints --------------------------

EVALUATING = Loop(8, checkpoint_every=2, log_every=1, max_to_keep=1, eval_every=2,
                  best_metric='score', keep_period=4)


def _fit_evaluating(workdir, evaluate=True, kill_at=None, **changes):
  return tiny_run.fit(workdir, dataclasses.replace(EVALUATING, **changes), kill_at=kill_at,
                      eval_fn=tiny_run.score if evaluate else None)


def test_evaluation_while_training_changes_nothing_and_keeps_the_best(tmp_path):
  evaluated = _fit_evaluating(tmp_path / 'evaluated')
  plain = _fit_evaluating(tmp_path / 'plain', evaluate=False, best_metric='')
  for a, b in zip(jax.tree.leaves(evaluated), jax.tree.leaves(plain)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  rows = tiny_run.rows(tmp_path / 'evaluated' / metrics_log.EVAL_FILE)
  assert [r['step'] for r in rows] == [2, 4, 6, 8]
  best_step = max(rows, key=lambda r: r['score'])['step']
  best = checkpoint.Checkpoints(tmp_path / 'evaluated', None, folder=checkpoint.BEST_FOLDER)
  assert best.manager.all_steps() == [best_step]
  restored = checkpoint.read_checkpoint(best.directory / str(best_step), tiny_run.fresh_state())
  best.close()
  assert tiny_run.score(restored)[0]['score'] == pytest.approx(
      next(r['score'] for r in rows if r['step'] == best_step), rel=1e-6)
  # max_to_keep=1 keeps the newest; keep_period=4 keeps the milestones 4 and 8 as well.
  assert checkpoint.saved_steps(tmp_path / 'evaluated') == [8, 4]
  assert not (tmp_path / 'plain' / metrics_log.EVAL_FILE).exists()


def test_a_killed_evaluating_run_resumes_to_the_same_rows_and_best(tmp_path):
  unbroken = _fit_evaluating(tmp_path / 'unbroken')
  with pytest.raises(Killed):  # after the checkpoint of step 4 and the evaluation of 6
    _fit_evaluating(tmp_path / 'resumed', kill_at=7, checkpoint_every=4)
  evaluated = tiny_run.rows(tmp_path / 'resumed' / metrics_log.EVAL_FILE)
  assert [r['step'] for r in evaluated] == [2, 4, 6]
  resumed = _fit_evaluating(tmp_path / 'resumed')
  for a, b in zip(jax.tree.leaves(unbroken), jax.tree.leaves(resumed)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  for name in ('metrics.jsonl', metrics_log.EVAL_FILE):
    strip = lambda rows: [{k: v for k, v in r.items() if k not in throughput.FIELDS}
                          for r in rows]
    assert (strip(tiny_run.rows(tmp_path / 'resumed' / name))
            == strip(tiny_run.rows(tmp_path / 'unbroken' / name)))
  steps = [checkpoint.Checkpoints(tmp_path / run, None, folder=checkpoint.BEST_FOLDER) for run in
           ('unbroken', 'resumed')]
  assert steps[0].manager.all_steps() == steps[1].manager.all_steps()
  for checkpoints in steps:
    checkpoints.close()


def test_a_resumed_run_drops_the_best_checkpoints_past_its_checkpoint(tmp_path):
  """Killed after evaluating step 6 (the best so far), resumed from step 4 and stopped at 5:
  the best folder holds no state past the parameters that exist."""
  with pytest.raises(Killed):
    _fit_evaluating(tmp_path, kill_at=7, checkpoint_every=4)
  _fit_evaluating(tmp_path, num_steps=5, checkpoint_every=4)
  best = checkpoint.Checkpoints(tmp_path, None, folder=checkpoint.BEST_FOLDER)
  assert max(best.manager.all_steps()) <= 5
  best.close()


@pytest.mark.parametrize('options, message', [
    ({'eval_every': 3, 'steps_per_call': 2, 'log_every': 2},
     'eval_every=3 must be 0 (off) or a positive multiple of steps_per_call=2'),
    ({'keep_period': 3}, 'keep_period=3 must be 0 (off) or a multiple of checkpoint_every=2'),
    ({'eval_every': 0}, 'best_metric=score needs evaluations'),
    ({'profile_steps': (5, 9)}, 'profile_steps=(5, 9)'),
    ({'preempt_grace_s': 0}, 'preempt_grace_s=0 must be in (0, 3600] seconds'),
    ({'best_metric': 'psnr'}, 'best_metric=psnr is not a metric of this evaluation'),
])
def test_loop_mistakes_are_usage_errors(tmp_path, options, message):
  with pytest.raises(UsageError, match=message.replace('(', '\\(').replace(')', '\\)')):
    _fit_evaluating(tmp_path, **options)
