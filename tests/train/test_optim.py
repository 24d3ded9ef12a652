"""Optimizers from config blocks: optax by name, PyTorch's and Caffe's coupled weight decay,
TF1's RMSProp, learning-rate schedules counted in updates, and gradient accumulation."""

import math
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from colorjax import configs
from colorjax.errors import UsageError
from colorjax.train import optim, train_state
from tests.train import tiny_run
from tests.train.tiny_run import LOSS


def test_optimizer_errors_are_usage_errors():
  with pytest.raises(UsageError, match="unknown optimizer 'adamm'"):
    optim.make_optimizer({'name': 'adamm', 'learning_rate': 1.0})
  with pytest.raises(UsageError, match='rejects its settings'):
    optim.make_optimizer({'name': 'adam', 'learning_rat': 1.0})


def test_sgd_weight_decay_is_pytorchs_coupled_decay():
  """PyTorch SGD(lr, momentum=m, nesterov=True, weight_decay=wd), first step: d = g + wd*p,
  buffer = d, update = d + m * buffer, p' = p - lr * (1 + m) * d."""
  tx = optim.make_optimizer({'name': 'sgd', 'learning_rate': 0.1, 'momentum': 0.9,
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
  tx = optim.make_optimizer({**config, 'drops': ((drop, 0.1),)})
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
  tx = optim.make_optimizer(config)
  params = jnp.array([1.0, -2.0, 0.5])
  grads = [jnp.array([0.5, 3.0, -1e-3]), jnp.array([-0.2, 1.0, 4.0])]
  state, ms = tx.init(params), np.ones(3)
  for g in grads:
    update, state = tx.update(g, state, params)
    ms = 0.9 * ms + 0.1 * np.asarray(g, np.float64) ** 2
    np.testing.assert_allclose(update, -1e-4 * np.asarray(g) / np.sqrt(ms + 1e-10), rtol=1e-5)


def _sgd_rates(optimizer_config, updates):
  """The rate each update applies, read off plain SGD: update = -rate * gradient (1)."""
  tx = optim.make_optimizer({'name': 'sgd', **optimizer_config})
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
  assert optim.learning_rate_at({'learning_rate': 0.5, 'drops': ((2, 0.1),)})(
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
  assert optim.learning_rate_schedule({'learning_rate': 0.1}) == 0.1
  tx = optim.make_optimizer({'name': 'adam', 'learning_rate': 0.1, 'schedule': 'constant',
                             'drops': (), 'accumulate_steps': 1})
  old = optim.make_optimizer({'name': 'adam', 'learning_rate': 0.1})
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
    optim.make_optimizer({'name': 'adam', 'learning_rate': 1e-3, **changes})


def test_accumulating_k_micro_batches_is_one_step_on_their_union():
  """k steps of b examples under accumulate_steps=k move the parameters once, exactly as one
  step of plain optax.adam on the k*b examples: the mean of equal-sized micro-batches' mean
  gradients is the mean gradient of their union (no BatchNorm here; with it, the statistics
  of each micro-batch differ from the union's)."""
  k, b = 3, 4
  accumulating = optim.make_optimizer({'name': 'adam', 'learning_rate': 1e-2,
                                       'accumulate_steps': k})
  plain = optax.adam(1e-2)
  union = tiny_run.batch(0, k * b)
  step = jax.jit(train_state.make_train_step(LOSS, accumulating))
  state = start = tiny_run.fresh_state(accumulating)
  for i in range(k):
    state, _ = step(state, {'rgb': union['rgb'][i * b:(i + 1) * b]})
    if i < k - 1:  # the micro-steps before the k-th change no parameter
      assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(state.params),
                                                       jax.tree.leaves(start.params)))
  reference, _ = jax.jit(train_state.make_train_step(LOSS, plain))(tiny_run.fresh_state(plain),
                                                                   union)
  for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(reference.params)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  # The schedule counts updates: step s of the loop uses the rate of update s // k.
  rate = optim.learning_rate_at({'learning_rate': 1.0, 'drops': ((2, 0.1),),
                                 'accumulate_steps': k})
  assert rate(np.arange(9)).tolist() == pytest.approx([1.0] * 6 + [0.1] * 3)


@pytest.mark.parametrize('block,message', [
    (configs.optimizer('adam', 0.1, schedule='cosine'),
     "--config.colorizer.optimizer.schedule='cosine' names no schedule"),
    (configs.optimizer('adamm', 0.1), 'colorizer.optimizer.name'),
    (configs.optimizer('adam', 0.1, betas=0.9), 'betas'),
])
def test_check_blocks_builds_every_optimizer_block_at_any_depth(block, message):
  config = ml_collections.ConfigDict({'classifier': {'optimizer': configs.optimizer('sgd', 0.1)},
                                      'colorizer': {'optimizer': block}})
  with pytest.raises(UsageError, match=re.escape(message)):
    optim.check_blocks(config)
  optim.check_blocks(ml_collections.ConfigDict({'colorizer': {
      'optimizer': configs.optimizer('adam', 0.1)}}))  # a good one passes
