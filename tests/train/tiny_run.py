"""The run the trainer's tests train: a tiny CNN on random batches, seconds per fit.

Batch k is a function of k alone, as the trainer's determinism contract asks; the model has
no BatchNorm, so a micro-batch's gradient is its examples' mean."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color
from colorjax.configs import Loop
from colorjax.models.tiny_cnn import TinyCNN
from colorjax.train import loop, losses, optim, train_state

MODEL = TinyCNN(channels=4)
LOSS = losses.ab_regression(MODEL, color.NORMALIZATIONS['unit'])
TX = optim.make_optimizer({'name': 'adam', 'learning_rate': 1e-2})
HELD_OUT = 10_000  # the batch index of the held-out batch `score` evaluates
STEP = jax.jit(train_state.make_train_step(LOSS, TX))  # one compile for every fit


def batch(step, size=8):
  rng = np.random.default_rng(step)
  return {'rgb': rng.integers(0, 256, (size, 12, 12, 3), dtype=np.uint8)}


@functools.cache
def fresh_state(tx=TX):
  """The initial state (shared: nothing here donates it)."""
  return train_state.init_state(MODEL, tx, jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 1)))


class Killed(Exception):
  """Stands for kill -9 before a step."""


_HELD_OUT_LOSS = jax.jit(lambda params: LOSS(params, {}, batch(HELD_OUT),
                                              jax.random.PRNGKey(0))[0])


def score(state):
  """An independent evaluation of a state: minus the loss on a held-out batch, and an image."""
  loss = float(_HELD_OUT_LOSS(state.params))
  return {'score': -loss, 'loss_held_out': loss}, np.full((4, 6, 3), 0.5, np.float32)


def fit(workdir, loop_config: Loop, *, kill_at=None, calls=None, eval_fn=None):
  """loop.fit of the tiny run, killed before step `kill_at`; the steps it runs are appended
  to `calls`."""
  def advance(state, k):
    if k == kill_at:
      raise Killed
    if calls is not None:
      calls.append(k)
    return STEP(state, batch(k))

  return loop.fit(workdir, fresh_state(), advance, loop_config, images_per_step=8,
                  eval_fn=eval_fn,
                  learning_rates={'learning_rate': optim.learning_rate_at(
                      {'learning_rate': 1e-2})})


def rows(path):
  return [json.loads(line) for line in path.read_text().splitlines()]
