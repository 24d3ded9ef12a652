"""A zhang_softmax workdir as a run leaves it, for tests of what reads a finished run."""

import jax

from colorjax import configs, train


def zhang_smoke_run(root, overrides: dict, state_of, head_scale: float):
  """config.json of zhang_softmax:smoke with `overrides`, and a checkpoint at step 1 of
  `state_of(config)` with the head's weights scaled by `head_scale`, so that a random
  network predicts colours, not near-gray. -> (config, the saved state)."""
  config = configs.apply_overrides(configs.load_config('zhang_softmax:smoke'), overrides,
                                   'zhang')
  configs.bind_workdir(root, config)
  state = state_of(config)
  head = max(state.params)
  state = state.replace(params={**state.params, head: jax.tree.map(
      lambda w: head_scale * w, state.params[head])})
  checkpoints = train.Checkpoints(root, max_to_keep=1)
  checkpoints.save(1, state)
  checkpoints.close()
  return config, state
