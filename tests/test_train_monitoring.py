"""What the trainer does besides training: learning-rate schedules, gradient accumulation,
evaluation while training with a best checkpoint, TensorBoard, throughput and profiling."""

import json
import math
import struct
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from colorjax import color, losses, report, tensorboard, throughput, train
from colorjax.errors import UsageError
from colorjax.models.tiny_cnn import TinyCNN

MODEL = TinyCNN(channels=4)  # no BatchNorm: a micro-batch's gradient is its examples' mean
LOSS = losses.ab_regression(MODEL, color.NORMALIZATIONS['unit'])


def _batch(step, size=8):
  rng = np.random.default_rng(step)
  return {'rgb': rng.integers(0, 256, (size, 12, 12, 3), dtype=np.uint8)}


def _state(tx):
  return train.init_state(MODEL, tx, jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 1)))


# --- schedules and accumulation -------------------------------------------------------------

def _sgd_rates(optimizer_config, updates):
  """The rate each update applies, read off plain SGD: update = -rate * gradient (1)."""
  tx = train.make_optimizer({'name': 'sgd', **optimizer_config})
  params = jnp.zeros(())
  state, rates = tx.init(params), []
  for _ in range(updates):
    update, state = tx.update(jnp.ones(()), state, params)
    rates.append(-float(update))
  return np.asarray(rates)


def test_step_drops_multiply_the_rate_from_their_update_on():
  rates = _sgd_rates({'learning_rate': 0.5, 'schedule': 'steps', 'drops': ((2, 0.1), (4, 0.5))},
                     6)
  np.testing.assert_allclose(rates, [0.5, 0.5, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)
  assert train.learning_rate_at({'learning_rate': 0.5, 'drops': ((2, 0.1),)})(
      np.arange(4)).tolist() == pytest.approx([0.5, 0.5, 0.05, 0.05])


def test_warmup_cosine_is_linear_then_half_a_cosine_to_the_end_value():
  peak, warmup, decay, end = 0.2, 4, 12, 0.25
  rates = _sgd_rates({'learning_rate': peak, 'schedule': 'warmup_cosine', 'warmup_steps': warmup,
                      'decay_steps': decay, 'end_factor': end}, 14)
  expected = [peak * t / warmup if t < warmup else
              peak * end + peak * (1 - end) * 0.5 * (1 + math.cos(
                  math.pi * min(t - warmup, decay - warmup) / (decay - warmup)))
              for t in range(14)]
  np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-8)


def test_a_config_without_schedule_keeps_a_constant_rate_as_a_float():
  """Runs saved before the field restore into the same optimizer state (no schedule count)."""
  assert train.learning_rate_schedule({'learning_rate': 0.1}) == 0.1
  tx = train.make_optimizer({'name': 'adam', 'learning_rate': 0.1, 'schedule': 'constant',
                             'drops': (), 'accumulate_steps': 1})
  old = train.make_optimizer({'name': 'adam', 'learning_rate': 0.1})
  params = {'w': jnp.ones(3)}
  assert (jax.tree.structure(tx.init(params)) == jax.tree.structure(old.init(params)))


@pytest.mark.parametrize('changes, message', [
    ({'schedule': 'cosine'}, "schedule='cosine' names no schedule"),
    ({'schedule': 'constant', 'drops': ((5, 0.1),)}, "applies to schedule 'steps' only"),
    ({'schedule': 'warmup_cosine', 'warmup_steps': 10, 'decay_steps': 10}, 'warmup_steps <'),
    ({'schedule': 'steps', 'drops': ((0, 0.1),)}, 'update >= 1 and factor > 0'),
    ({'accumulate_steps': 0}, 'accumulate_steps=0 must be a whole number >= 1'),
])
def test_bad_schedules_are_one_line_usage_errors(changes, message):
  with pytest.raises(UsageError, match=message.replace('(', '\\(').replace(')', '\\)')):
    train.make_optimizer({'name': 'adam', 'learning_rate': 1e-3, **changes})


def test_accumulating_k_micro_batches_is_one_step_on_their_union():
  """k steps of b examples under accumulate_steps=k move the parameters once, exactly as one
  step of plain optax.adam on the k*b examples: the mean of equal-sized micro-batches' mean
  gradients is the mean gradient of their union (no BatchNorm here; with it, the statistics
  of each micro-batch differ from the union's)."""
  k, b = 3, 4
  accumulating = train.make_optimizer({'name': 'adam', 'learning_rate': 1e-2,
                                       'accumulate_steps': k})
  plain = optax.adam(1e-2)
  union = _batch(0, k * b)
  step = jax.jit(train.make_train_step(LOSS, accumulating))
  state = start = _state(accumulating)
  for i in range(k):
    state, _ = step(state, {'rgb': union['rgb'][i * b:(i + 1) * b]})
    if i < k - 1:  # the micro-steps before the k-th change no parameter
      assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(state.params),
                                                       jax.tree.leaves(start.params)))
  reference, _ = jax.jit(train.make_train_step(LOSS, plain))(_state(plain), union)
  for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(reference.params)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  # The schedule counts updates: step s of the loop uses the rate of update s // k.
  rate = train.learning_rate_at({'learning_rate': 1.0, 'drops': ((2, 0.1),),
                                 'accumulate_steps': k})
  assert rate(np.arange(9)).tolist() == pytest.approx([1.0] * 6 + [0.1] * 3)


# --- fit: evaluation, best and milestone checkpoints, resume ------------------------------

TX = train.make_optimizer({'name': 'adam', 'learning_rate': 1e-2})
EVAL_BATCH = _batch(10_000)


class _Killed(Exception):
  pass


def _score(state):
  """An independent evaluation of a state: minus the loss on a held-out batch, and an image."""
  loss = float(LOSS(state.params, {}, EVAL_BATCH, jax.random.PRNGKey(0))[0])
  return {'score': -loss, 'loss_held_out': loss}, np.full((4, 6, 3), 0.5, np.float32)


def _fit(workdir, evaluate=True, kill_at=None, **options):
  step = jax.jit(train.make_train_step(LOSS, TX))

  def advance(state, k):
    if k == kill_at:
      raise _Killed
    return step(state, _batch(k))

  options = dict(num_steps=8, checkpoint_every=2, log_every=1, max_to_keep=1,
                 images_per_step=8, eval_every=2, best_metric='score', keep_period=4) | options
  return train.fit(workdir=workdir, state=_state(TX), advance=advance,
                   evaluate=_score if evaluate else None,
                   learning_rates={'learning_rate': train.learning_rate_at(
                       {'learning_rate': 1e-2})}, **options)


def _rows(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluation_while_training_changes_nothing_and_keeps_the_best(tmp_path):
  evaluated = _fit(tmp_path / 'evaluated')
  plain = _fit(tmp_path / 'plain', evaluate=False, best_metric='')
  for a, b in zip(jax.tree.leaves(evaluated), jax.tree.leaves(plain)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  rows = _rows(tmp_path / 'evaluated' / train.EVAL_FILE)
  assert [r['step'] for r in rows] == [2, 4, 6, 8]
  best_step = max(rows, key=lambda r: r['score'])['step']
  best = train.Checkpoints(tmp_path / 'evaluated', None, folder=train.BEST_FOLDER)
  assert best.manager.all_steps() == [best_step]
  restored = train.read_checkpoint(best.directory / str(best_step), _state(TX))
  best.close()
  assert _score(restored)[0]['score'] == pytest.approx(
      next(r['score'] for r in rows if r['step'] == best_step), rel=1e-6)
  # max_to_keep=1 keeps the newest; keep_period=4 keeps the milestones 4 and 8 as well.
  assert train.saved_steps(tmp_path / 'evaluated') == [8, 4]
  assert not (tmp_path / 'plain' / train.EVAL_FILE).exists()


def test_a_killed_evaluating_run_resumes_to_the_same_rows_and_best(tmp_path):
  unbroken = _fit(tmp_path / 'unbroken')
  with pytest.raises(_Killed):  # after the checkpoint of step 4 and the evaluation of 6
    _fit(tmp_path / 'resumed', kill_at=7, checkpoint_every=4)
  assert [r['step'] for r in _rows(tmp_path / 'resumed' / train.EVAL_FILE)] == [2, 4, 6]
  resumed = _fit(tmp_path / 'resumed')
  for a, b in zip(jax.tree.leaves(unbroken), jax.tree.leaves(resumed)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  for name in ('metrics.jsonl', train.EVAL_FILE):
    strip = lambda rows: [{k: v for k, v in r.items() if k not in throughput.FIELDS}
                          for r in rows]
    assert strip(_rows(tmp_path / 'resumed' / name)) == strip(_rows(tmp_path / 'unbroken' / name))
  steps = [train.Checkpoints(tmp_path / run, None, folder=train.BEST_FOLDER) for run in
           ('unbroken', 'resumed')]
  assert steps[0].manager.all_steps() == steps[1].manager.all_steps()
  for checkpoints in steps:
    checkpoints.close()


def test_a_resumed_run_drops_the_best_checkpoints_past_its_checkpoint(tmp_path):
  """Killed after evaluating step 6 (the best so far), resumed from step 4 and stopped at 5:
  the best folder holds no state past the parameters that exist."""
  with pytest.raises(_Killed):
    _fit(tmp_path, kill_at=7, checkpoint_every=4)
  _fit(tmp_path, num_steps=5, checkpoint_every=4)
  best = train.Checkpoints(tmp_path, None, folder=train.BEST_FOLDER)
  assert max(best.manager.all_steps()) <= 5
  best.close()


@pytest.mark.parametrize('options, message', [
    ({'eval_every': 3, 'steps_per_call': 2, 'log_every': 2},
     'eval_every=3 must be 0 (off) or a positive multiple of steps_per_call=2'),
    ({'keep_period': 3}, 'keep_period=3 must be 0 (off) or a multiple of checkpoint_every=2'),
    ({'eval_every': 0}, 'best_metric=score needs evaluations'),
    ({'profile_steps': (5, 9)}, 'profile_steps=(5, 9)'),
    ({'best_metric': 'psnr'}, 'best_metric=psnr is not a metric of this evaluation'),
])
def test_loop_mistakes_are_usage_errors(tmp_path, options, message):
  with pytest.raises(UsageError, match=message.replace('(', '\\(').replace(')', '\\)')):
    _fit(tmp_path, **options)


# --- TensorBoard, throughput, profile -----------------------------------------------------

def _events(folder):
  """(tag, step, value or None for an image) of every summary in the event files: TFRecord
  framing (length, its CRC, the Event, its CRC) read by hand, the Event parsed with
  tensorboardX's own protobuf classes."""
  from tensorboardX.proto import event_pb2
  found = []
  for path in sorted(folder.glob('events.out.tfevents.*')):
    raw = path.read_bytes()
    while raw:
      length, = struct.unpack('<Q', raw[:8])
      event = event_pb2.Event.FromString(raw[12:12 + length])
      raw = raw[12 + length + 4:]
      for value in event.summary.value:
        found.append((value.tag, event.step,
                      None if value.HasField('image') else value.simple_value))
  return found


def test_tensorboard_holds_the_rows_and_eval_images(tmp_path):
  """(Written without TensorFlow: test_run.py runs every family, TensorBoard included, with
  TensorFlow hidden; here another test may have imported it.)"""
  _fit(tmp_path)
  events = _events(tmp_path / tensorboard.FOLDER)
  train_rows = _rows(tmp_path / 'metrics.jsonl')
  assert [(s, v) for t, s, v in events if t == 'train/loss'] == [
      (r['step'], pytest.approx(r['loss'])) for r in train_rows]
  for tag in ('train/learning_rate', 'train/images_per_second', 'train/step_time_ms',
              'train/steps_per_second'):
    assert [s for t, s, _ in events if t == tag] == list(range(8))
  assert [s for t, s, _ in events if t == 'eval/score'] == [2, 4, 6, 8]
  assert [s for t, s, v in events if t == 'eval/samples' and v is None] == [2, 4, 6, 8]


def test_throughput_fields_measure_the_wall_clock(tmp_path):
  """An advance that takes 50 ms a step: 20 steps/s, 50 ms, 8 x 20 images/s, and with
  1e9 FLOPs a step, 0.02 TFLOP/s (within the timer's slack); the 0.3 s evaluation after
  step 4 is not training time."""
  def advance(state, k):
    time.sleep(0.05)
    return state, {'loss': jnp.zeros(())}

  def slow_evaluation(state):
    time.sleep(0.3)
    return {'score': 0.0}, None

  train.fit(workdir=tmp_path, state=_state(TX), advance=advance, num_steps=8,
            checkpoint_every=8, log_every=4, images_per_step=8, flops_per_step=1e9,
            evaluate=slow_evaluation, eval_every=4)
  rows = _rows(tmp_path / 'metrics.jsonl')
  for row in rows[4:]:  # the second interval: no checkpoint restore or compile in it
    assert 14 < row['steps_per_second'] < 21
    assert row['step_time_ms'] == pytest.approx(1e3 / row['steps_per_second'])
    assert row['images_per_second'] == pytest.approx(8 * row['steps_per_second'])
    assert row['tflops_per_second'] == pytest.approx(1e-3 * row['steps_per_second'])


def test_step_flops_of_a_matmul_is_two_n_cubed_and_peaks_come_from_the_table():
  x = jnp.ones((32, 32))
  assert throughput.step_flops(jax.jit(lambda a, b: a @ b), x, x) == pytest.approx(2 * 32 ** 3)
  assert throughput.peak_tflops('NVIDIA H100 80GB HBM3') == 989.0
  assert throughput.peak_tflops('NVIDIA A100-SXM4-40GB') == 312.0
  assert throughput.peak_tflops('cpu') is None
  assert throughput.peak_tflops('cpu', configured=2.5) == 2.5


def test_profile_steps_write_a_trace_into_the_workdir(tmp_path):
  _fit(tmp_path, evaluate=False, best_metric='', num_steps=3, checkpoint_every=3,
       keep_period=0, profile_steps=(1, 1))
  assert list((tmp_path / 'profile').rglob('*.xplane.pb'))


def test_the_eval_curve_figure_and_its_section(tmp_path):
  rows = [{'step': s, 'psnr': 20.0 + s, 'auc_rebalanced': 0.5, 'ab_std_ratio': 0.3}
          for s in (10, 20)]
  sections = report.eval_curve_sections(tmp_path, {'a': rows, 'b': []})
  assert '![eval curves](eval_curves.png)' in sections
  assert (tmp_path / 'eval_curves.png').stat().st_size > 0
  assert report.eval_curve_sections(tmp_path, {'a': []}) == []
