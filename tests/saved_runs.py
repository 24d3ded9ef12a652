"""A zhang_softmax workdir as a run leaves it, for tests of what reads a finished run."""

import jax
import numpy as np

from colorjax import configs
from colorjax.cli import flags
from colorjax.train import checkpoint, train_state, workdirs
from tests import numpy_init


def zhang_smoke_run(root, overrides: dict, state_of, head_scale: float):
  """config.json of zhang_softmax:smoke with `overrides`, and a checkpoint at step 1 of
  `state_of(config)` with the head's weights scaled by `head_scale`, so that a random
  network predicts colours, not near-gray. -> (config, the saved state)."""
  config = flags.apply_overrides(configs.load_config('zhang_softmax:smoke'), overrides,
                                   'zhang')
  workdirs.bind(root, config)
  state = state_of(config)
  head = max(state.params)
  state = state.replace(params={**state.params, head: jax.tree.map(
      lambda w: head_scale * w, state.params[head])})
  checkpoints = checkpoint.Checkpoints(root, max_to_keep=1)
  checkpoints.save(1, state)
  checkpoints.close()
  return config, state


def numpy_state(model, tx, input_shape, seed=0):
  """A fresh TrainState of `model` with numpy_init's variables."""
  variables = numpy_init.variables(model, input_shape, seed)
  return train_state.TrainState(step=np.int32(0), params=variables['params'],
                                opt_state=jax.jit(tx.init)(variables['params']),
                                batch_stats=variables['batch_stats'],
                                key=jax.random.PRNGKey(seed))
