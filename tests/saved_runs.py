"""Workdirs as runs leave them (zhang_softmax, the ablation's), for tests of what reads a
finished run."""

import jax
import numpy as np

from colorjax import configs
from colorjax.cli import flags
from colorjax.families import norm_ablation as ablation_family
from colorjax.programs import norm_ablation as ablation
from colorjax.train import checkpoint, optim, train_state, workdirs
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


def ablation_run(root):
  """An ablation workdir with config.json and a checkpoint, as a run leaves them."""
  config = flags.apply_overrides(configs.load_config('norm_ablation'),
                                   {'image_scale': '0.1', 'seeds': '0'}, 'norm_ablation')
  workdirs.bind(root, config)
  state = jax.jit(lambda: ablation.init_states(
      ablation_family.network(config), optim.make_optimizer(config.optimizer),
      ablation_family.list_runs(config)))()
  last_layer = max(state.params)  # the output conv, named last
  state = state.replace(params={**state.params, last_layer: jax.tree.map(
      lambda w: 30 * w, state.params[last_layer])})
  checkpoints = checkpoint.Checkpoints(root, max_to_keep=1)
  checkpoints.save(1, state)
  checkpoints.close()
  return root


