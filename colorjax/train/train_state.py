"""What trains: a network's training state (TrainState; NetworkState for a state that holds
several networks), its initialization as one compiled function, and the optimizer step.

A loss_fn (losses.py) is (params, batch_stats, batch, key) -> (loss, (metrics, batch_stats));
the step's key is fold_in(state key, step), so step k's randomness is a function of (seed,
k) and a resumed run continues exactly as an unbroken one.
"""

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any
  key: jax.Array


@flax.struct.dataclass
class NetworkState:
  """One network of a state that trains several, each with its own optimizer."""
  params: Any
  opt_state: Any
  batch_stats: Any

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}


def init_network(model, tx, key, *sample_inputs) -> NetworkState:
  """One compiled function: run eagerly, each initializer and optimizer-state leaf compiles
  on its own (over 100 XLA compiles for the U-Net)."""

  @jax.jit
  def init(key, *sample_inputs):
    variables = model.init(key, *sample_inputs, train=False)
    params = variables['params']
    return NetworkState(params=params, opt_state=tx.init(params),
                        batch_stats=variables.get('batch_stats', {}))

  return init(key, *sample_inputs)


def init_state(model, tx, key, sample_input) -> TrainState:
  """Initialize a model's variables and optimizer; pure, so it can be vmapped over keys."""
  init_key, state_key = jax.random.split(key)
  network = init_network(model, tx, init_key, sample_input)
  return TrainState(step=jnp.zeros((), jnp.int32), params=network.params,
                    opt_state=network.opt_state, batch_stats=network.batch_stats, key=state_key)


def apply_gradients(tx, grads, opt_state, params):
  """(new params, new optimizer state) after one optimizer update."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_train_step(loss_fn, tx):
  """(state, batch) -> (state, metrics): one optimizer step on loss_fn."""

  def train_step(state: TrainState, batch):
    key = jax.random.fold_in(state.key, state.step)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (metrics, batch_stats)), grads = grad_fn(state.params, state.batch_stats, batch, key)
    params, opt_state = apply_gradients(tx, grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                          batch_stats=batch_stats)
    return state, {'loss': loss, **metrics}

  return train_step


def advance_with_batches(train_step, batches_from: Callable):
  """An `advance(state, step) -> (state, metrics)` for loop.fit that feeds the jitted
  `train_step` from a data pipeline. `batches_from(start_step)` gives the (global) batches
  from batch `start_step` on; it is called at the first step this process runs, so a resumed
  run continues with exactly the batches an unbroken run would have seen."""
  batches = None

  def advance(state, step):
    nonlocal batches
    if batches is None:
      batches = batches_from(step)
    return train_step(state, next(batches))

  return advance
