"""The generic trainer: step, data parallelism, checkpoint/resume, NaN guard."""

import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from colorjax import color, configs, losses, train
from colorjax.errors import UsageError
from colorjax.models.tiny_cnn import TinyCNN

MODEL = TinyCNN(channels=4)
TX = train.make_optimizer({'name': 'adam', 'learning_rate': 1e-2})
LOSS = losses.ab_regression(MODEL, color.NORMALIZATIONS['unit'])


def _batch(step, size=8):
  """Batch k is a function of k alone, as the trainer's determinism contract asks."""
  rng = np.random.default_rng(step)
  return {'rgb': rng.integers(0, 256, (size, 12, 12, 3), dtype=np.uint8)}


def _fresh_state():
  return train.init_state(MODEL, TX, jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 1)))


def _tree_allclose(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_step_reduces_loss_changes_params_and_jit_agrees():
  step = train.make_train_step(LOSS, TX)
  batch = _batch(0)
  state = _fresh_state()
  eager_state, eager_metrics = step(state, batch)
  jit_state, jit_metrics = jax.jit(step)(state, batch)
  _tree_allclose(eager_state.params, jit_state.params, atol=1e-6)
  assert abs(float(eager_metrics['loss']) - float(jit_metrics['loss'])) < 1e-6
  assert int(jit_state.step) == 1
  changed = [not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(state.params), jax.tree.leaves(jit_state.params))]
  assert all(changed)
  loss_before = float(LOSS(state.params, {}, batch, jax.random.PRNGKey(0))[0])
  loss_after = float(LOSS(jit_state.params, {}, batch, jax.random.PRNGKey(0))[0])
  assert loss_after < loss_before


def _train_sharded(devices, steps=3):
  mesh = train.data_mesh(devices)
  step = train.shard_train_step(train.make_train_step(LOSS, TX), mesh)
  state = _fresh_state()
  for k in range(steps):
    state, _ = step(state, _batch(k))
  return state


def test_four_devices_give_the_same_params_as_one():
  assert jax.device_count() == 4, 'conftest sets 4 fake CPU devices'
  one = _train_sharded(jax.devices()[:1])
  four = _train_sharded(jax.devices())
  assert four.params['Conv3x3_0']['kernel'].sharding.num_devices == 4
  _tree_allclose(one.params, four.params, atol=1e-5)


class _Killed(Exception):
  pass


def _fit(workdir, num_steps=8, kill_at=None, calls=None):
  step = jax.jit(train.make_train_step(LOSS, TX))

  def advance(state, k):
    if k == kill_at:
      raise _Killed
    if calls is not None:
      calls.append(k)
    return step(state, _batch(k))

  return train.fit(workdir=workdir, state=_fresh_state(), advance=advance, num_steps=num_steps,
                   checkpoint_every=3, log_every=1, max_to_keep=2)


def test_resume_after_a_kill_ends_bitwise_equal_to_an_unbroken_run(tmp_path):
  unbroken = _fit(tmp_path / 'unbroken')
  with pytest.raises(_Killed):
    _fit(tmp_path / 'resumed', kill_at=7)  # after the checkpoint of step 6, mid-way on
  calls = []
  resumed = _fit(tmp_path / 'resumed', calls=calls)
  assert calls == [6, 7]  # it continued from the checkpoint, not from scratch
  for a, b in zip(jax.tree.leaves(unbroken), jax.tree.leaves(resumed)):
    assert np.array_equal(np.asarray(a), np.asarray(b))
  logged = [json.loads(line)['step'] for line in (tmp_path / 'resumed/metrics.jsonl').open()]
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

  step = jax.jit(train.make_train_step(poisoned_loss, TX))

  def advance(state, k):
    return step(state, {**_batch(k), 'poison': np.asarray(k >= poison_from)})

  with pytest.raises(train.Diverged, match=f'at step {poison_from}.*checkpoint \\(step 3\\)'):
    train.fit(workdir=tmp_path, state=_fresh_state(), advance=advance, num_steps=9,
              checkpoint_every=3, log_every=3)
  checkpoints = train.Checkpoints(tmp_path, max_to_keep=2)
  assert checkpoints.latest_step() == 3
  restored = train.read_checkpoint(checkpoints.directory / '3', _fresh_state())
  checkpoints.close()
  clean = _fit(tmp_path / 'clean', num_steps=3)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.params))
  for a, b in zip(jax.tree.leaves(clean.params), jax.tree.leaves(restored.params)):
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_schedule_must_align_with_steps_per_call(tmp_path):
  with pytest.raises(UsageError, match='checkpoint_every=5 must be a positive multiple'):
    train.fit(workdir=tmp_path, state=None, advance=None, num_steps=10, steps_per_call=2,
              checkpoint_every=5)


def test_optimizer_errors_are_usage_errors():
  with pytest.raises(UsageError, match="unknown optimizer 'adamm'"):
    train.make_optimizer({'name': 'adamm', 'learning_rate': 1.0})
  with pytest.raises(UsageError, match='rejects its settings'):
    train.make_optimizer({'name': 'adam', 'learning_rat': 1.0})


def _fit_on_pipeline(workdir, kill_at=None):
  """The tiny CNN trained data-parallel on batches from the input pipeline."""
  from colorjax import configs, data
  config = configs.data_config(crop=16, batch_size=8)
  mesh = train.data_mesh()
  source = data.load_source(config, 'train')
  step = train.shard_train_step(train.make_train_step(LOSS, TX), mesh)

  def batches_from(start):
    return data.prefetch_to_device(data.train_batches(source, config, start), mesh)

  advance = train.advance_with_batches(step, batches_from)

  def killable(state, k):
    if k == kill_at:
      raise _Killed
    return advance(state, k)

  state = train.replicate(
      train.init_state(MODEL, TX, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1))), mesh)
  return train.fit(workdir=workdir, state=state, advance=killable, num_steps=6,
                   checkpoint_every=2, log_every=2)


def test_training_on_the_pipeline_resumes_with_the_same_batches(tmp_path, caplog):
  with jax.log_compiles(True), caplog.at_level(logging.WARNING):
    unbroken = _fit_on_pipeline(tmp_path / 'unbroken')
  compiles = [r for r in caplog.records if 'Compiling jit(train_step)' in r.getMessage()]
  assert len(compiles) == 1  # six steps, one compile
  with pytest.raises(_Killed):
    _fit_on_pipeline(tmp_path / 'resumed', kill_at=3)
  resumed = _fit_on_pipeline(tmp_path / 'resumed')
  for a, b in zip(jax.tree.leaves(unbroken.params), jax.tree.leaves(resumed.params)):
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_sgd_weight_decay_is_pytorchs_coupled_decay():
  """PyTorch SGD(lr, momentum=m, nesterov=True, weight_decay=wd), first step: d = g + wd*p,
  buffer = d, update = d + m * buffer, p' = p - lr * (1 + m) * d."""
  tx = train.make_optimizer({'name': 'sgd', 'learning_rate': 0.1, 'momentum': 0.9,
                             'nesterov': True, 'weight_decay': 0.01})
  params, grads = jnp.asarray([2.0, -1.0]), jnp.asarray([0.5, 0.25])
  updates, _ = tx.update(grads, tx.init(params), params)
  d = np.asarray([0.5 + 0.01 * 2.0, 0.25 - 0.01 * 1.0])
  np.testing.assert_allclose(params + updates, np.asarray(params) - 0.1 * 1.9 * d, rtol=1e-6)


def test_zhang_optimizer_is_caffes_coupled_decay_with_a_rate_drop():
  """Caffe adds weight_decay * params to the gradient before Adam; the rate drops x0.1 at the
  drop step. Reference: optax.adam fed the decayed gradient by hand, at both rates."""
  config = configs.load_config('zhang_softmax').optimizer
  assert config.name == 'adam' and tuple(config.drops) == ((225_000, 0.1),)
  drop = 3
  tx = train.make_optimizer({**config, 'drops': ((drop, 0.1),)})
  params = {'w': jnp.asarray([1.0, -2.0, 3.0])}
  grads = [{'w': jnp.asarray([0.5, 0.1, -0.3]) * (i + 1)} for i in range(5)]
  state = tx.init(params)
  reference = {rate: optax.adam(rate, b1=0.9, b2=0.99) for rate in (3e-5, 3e-6)}
  reference_states = {rate: r.init(params) for rate, r in reference.items()}
  for step, g in enumerate(grads):
    updates, state = tx.update(g, state, params)
    decayed = jax.tree.map(lambda gi, p: gi + 1e-3 * p, g, params)
    expected = {}
    for rate, r in reference.items():
      expected[rate], reference_states[rate] = r.update(decayed, reference_states[rate])
    rate = 3e-5 if step < drop else 3e-6
    np.testing.assert_allclose(updates['w'], expected[rate]['w'], rtol=1e-5)


def test_authors_gan_optimizer_is_tf1_rmsprop():
  """TF1's RMSPropOptimizer(decay=0.9): ms starts at 1, ms = 0.9 ms + 0.1 g^2, update =
  -lr g / sqrt(ms + 1e-10): two steps by hand (PyTorch's RMSprop, ms from 0, eps outside
  the root, moves the first step by lr / sqrt(0.1) ~ 3x)."""
  config = configs.load_config('yuv_gan:authors').generator_optimizer
  tx = train.make_optimizer(config)
  params = jnp.array([1.0, -2.0, 0.5])
  grads = [jnp.array([0.5, 3.0, -1e-3]), jnp.array([-0.2, 1.0, 4.0])]
  state, ms = tx.init(params), np.ones(3)
  for g in grads:
    update, state = tx.update(g, state, params)
    ms = 0.9 * ms + 0.1 * np.asarray(g, np.float64) ** 2
    np.testing.assert_allclose(update, -1e-4 * np.asarray(g) / np.sqrt(ms + 1e-10), rtol=1e-5)
