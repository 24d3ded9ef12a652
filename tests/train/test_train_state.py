"""The train step: it lowers the loss, jit agrees with eager, and 4 devices train as 1."""

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color, mesh
from colorjax.models.tiny_cnn import TinyCNN
from colorjax.train import losses, train_state
from tests.train import tiny_run
from tests.train.tiny_run import LOSS, TX


def _tree_allclose(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def test_step_reduces_loss_changes_params_and_jit_agrees():
  """Eager and jitted, on the tiny CNN with XLA's convolution (the taps formulation, op by op,
  would dispatch thousands of operations: the same parameters, tested alike elsewhere)."""
  loss_fn = losses.ab_regression(TinyCNN(channels=4, taps=False), color.NORMALIZATIONS['unit'])
  step = train_state.make_train_step(loss_fn, TX)
  batch = tiny_run.batch(0)
  state = tiny_run.fresh_state()
  eager_state, eager_metrics = step(state, batch)
  jit_state, jit_metrics = jax.jit(step)(state, batch)
  _tree_allclose(eager_state.params, jit_state.params, atol=1e-6)
  assert abs(float(eager_metrics['loss']) - float(jit_metrics['loss'])) < 1e-6
  assert int(jit_state.step) == 1
  changed = [not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(state.params), jax.tree.leaves(jit_state.params))]
  assert all(changed)
  loss = jax.jit(lambda params: loss_fn(params, {}, batch, jax.random.PRNGKey(0))[0])
  assert float(loss(jit_state.params)) < float(loss(state.params))


def _train_sharded(devices, steps=3):
  data_mesh = mesh.data_mesh(devices)
  step = mesh.shard_train_step(train_state.make_train_step(LOSS, TX), data_mesh)
  state = jax.tree.map(jnp.copy, tiny_run.fresh_state())  # the step donates it
  for k in range(steps):
    state, _ = step(state, tiny_run.batch(k))
  return state


def test_four_devices_give_the_same_params_as_one():
  assert jax.device_count() == 4, 'conftest sets 4 fake CPU devices'
  one = _train_sharded(jax.devices()[:1])
  four = _train_sharded(jax.devices())
  assert four.params['Conv3x3_0']['kernel'].sharding.num_devices == 4
  _tree_allclose(one.params, four.params, atol=1e-5)
