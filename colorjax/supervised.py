"""Train one network on a data source: what the programs that train single networks share.

A stage config holds `data` (configs.data_config), `optimizer`, `seed`, `num_steps` or
`epochs`, and the fields of configs.schedule. A program may train several stages, each in
its own workdir (the flowers classifier, then two colorizers).
"""

import math

import jax
import jax.numpy as jnp

from colorjax import data, evaluator, train
from colorjax.errors import UsageError


def check_stage(stage, prefix=''):
  """A stage's mistakes, found before anything trains: its data block, its schedule and its
  evaluation. `prefix` names the stage in messages ('colorizer.')."""
  data.check(stage.data, jax.device_count())
  # With epochs the length is known once the source is loaded (fit checks it again).
  train.check_schedule(2**62 if stage.get('epochs', 0) > 0 else stage.num_steps, 1,
                       **train.loop_options(stage))
  if stage.get('eval_every', 0) and stage.eval_every_batches < 1:
    raise UsageError(f'--config.{prefix}eval_every_batches={stage.eval_every_batches} must be '
                     'at least 1')
  if stage.eval_batches < 1:
    raise UsageError(f'--config.{prefix}eval_batches={stage.eval_batches} must be at least 1 '
                     '(a report needs images to score)')
  if stage.report_images < 0:
    raise UsageError(f'--config.{prefix}report_images={stage.report_images} must be 0 or more')


def num_steps(stage, source) -> int:
  """`stage.epochs` passes over the training split when set (> 0), else `stage.num_steps`."""
  if stage.get('epochs', 0) <= 0:
    return stage.num_steps
  return max(1, math.ceil(stage.epochs * source.num_examples / stage.data.batch_size))


def initial_state(stage, model) -> train.TrainState:
  """The fresh state fit_network trains from: also the shape of its checkpoints."""
  return train.init_state(model, train.make_optimizer(stage.optimizer),
                          jax.random.PRNGKey(stage.seed),
                          jnp.zeros((1, stage.data.crop, stage.data.crop, 1)))


def fit_network(stage, workdir, model, loss_fn, *, source=None, init=None,
                description='train', trained=None, eval_source=None) -> train.TrainState:
  """Data-parallel training of `model` (input: L, one channel) on loss_fn, resumable in
  `workdir`. `init(state)` may change the fresh state before training (e.g. load a
  pretrained encoder); a resumed run restores its checkpoint instead. With `trained` (the
  program's colorizer of this network) and `stage.eval_every`, the state is evaluated on
  the eval split (`eval_source`) while it trains (evaluator.in_training)."""
  mesh = train.data_mesh()
  source = source or data.load_source(stage.data, 'train')
  tx = train.make_optimizer(stage.optimizer)
  state = initial_state(stage, model)
  if init is not None:
    state = init(state)
  step = train.shard_train_step(train.make_train_step(loss_fn, tx), mesh)
  advance = train.advance_with_batches(step, lambda start: data.prefetch_to_device(
      data.train_batches(source, stage.data, start), mesh))
  evaluate = evaluator.in_training(stage, trained, eval_source) if trained else None
  return train.fit(workdir=workdir, state=train.replicate(state, mesh), advance=advance,
                   num_steps=num_steps(stage, source), description=description,
                   images_per_step=stage.data.batch_size, evaluate=evaluate,
                   learning_rates={'learning_rate': train.learning_rate_at(stage.optimizer)},
                   **train.loop_options(stage))


def variables(state: train.TrainState) -> dict:
  """What a network's apply (and a predictor) takes from its training state."""
  return {'params': state.params, 'batch_stats': state.batch_stats}
