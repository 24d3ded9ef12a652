"""Train one network on a data source: what the programs that train single networks share.

A stage config holds `data` (configs.data_config), `optimizer`, `seed`, `num_steps` or
`epochs`, and the fields of configs.schedule. A program may train several stages, each in
its own workdir (the flowers classifier, then two colorizers). A stage that fine-tunes
(`init_from`) passes train/init_from's initializer as fit_network's `init`.
"""

import math

import jax
import jax.numpy as jnp

from colorjax import mesh
from colorjax.configs import Loop
from colorjax.data import pipeline, sources
from colorjax.errors import UsageError
from colorjax.eval import evaluator
from colorjax.train import loop, optim, throughput, train_state


def check_stage(stage, prefix=''):
  """A stage's mistakes, found before anything trains: its data block, its schedule and its
  evaluation. `prefix` names the stage in messages ('colorizer.')."""
  sources.check(stage.data, jax.device_count())
  # With epochs the length is known once the source is loaded (fit checks it again).
  Loop.from_config(stage, num_steps=2**62 if stage.get('epochs', 0) > 0 else stage.num_steps
                   ).check()
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


def initial_state(stage, model) -> train_state.TrainState:
  """The fresh state fit_network trains from: also the shape of its checkpoints."""
  return train_state.init_state(model, optim.make_optimizer(stage.optimizer),
                          jax.random.PRNGKey(stage.seed),
                          jnp.zeros((1, stage.data.crop, stage.data.crop, 1)))


def train_batch_shapes(data_config, mesh_):
  """The global training batch as the step sees it (jax.ShapeDtypeStruct, sharded): what
  XLA's FLOP estimate of a step is lowered for, before any batch is read."""
  sharding = jax.sharding.NamedSharding(mesh_, jax.sharding.PartitionSpec('data'))
  size, crop = data_config.batch_size, data_config.crop
  return {'rgb': jax.ShapeDtypeStruct((size, crop, crop, 3), jnp.uint8, sharding=sharding),
          'label': jax.ShapeDtypeStruct((size,), jnp.int32, sharding=sharding)}


def fit_network(stage, workdir, model, loss_fn, *, source=None, init=None,
                description='train', network=None, eval_source=None) -> train_state.TrainState:
  """Data-parallel training of `model` (input: L, one channel) on loss_fn, resumable in
  `workdir`. `init(state)` may change the fresh state before training (e.g. load a
  pretrained encoder); a resumed run restores its checkpoint instead. With `network` (the
  family's NetworkSpec of this network) and `stage.eval_every`, the state is evaluated on
  the eval split (`eval_source`) while it trains (evaluator.in_training)."""
  data_mesh = mesh.data_mesh()
  source = source or sources.load_source(stage.data, 'train')
  tx = optim.make_optimizer(stage.optimizer)
  fresh = initial_state(stage, model)
  if init is not None:
    fresh = init(fresh)
  fresh = mesh.replicate(fresh, data_mesh)
  step = mesh.shard_train_step(train_state.make_train_step(loss_fn, tx), data_mesh)
  advance = train_state.advance_with_batches(step, lambda start: pipeline.prefetch_to_device(
      pipeline.train_batches(source, stage.data, start), data_mesh))
  eval_fn = evaluator.in_training(stage, network, eval_source) if network else None
  return loop.fit(workdir, fresh, advance, Loop.from_config(stage, num_steps=num_steps(
      stage, source)), description=description, images_per_step=stage.data.batch_size,
      flops_per_step=throughput.step_flops(step, fresh, train_batch_shapes(stage.data,
                                                                           data_mesh)),
      learning_rates={'learning_rate': optim.learning_rate_at(stage.optimizer)},
      eval_fn=eval_fn)
