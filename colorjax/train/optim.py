"""An optimizer block of a config (configs.optimizer) -> an optax optimizer, with its
learning-rate schedule and gradient accumulation."""

import inspect
from typing import Callable

import ml_collections
import numpy as np
import optax

from colorjax.errors import UsageError

SCHEDULES = ('constant', 'steps', 'warmup_cosine')
# The optimizer block's fields that colorjax reads itself; the others go to the optax factory.
SCHEDULE_FIELDS = ('schedule', 'drops', 'warmup_steps', 'decay_steps', 'end_factor',
                   'accumulate_steps')


def learning_rate_schedule(optimizer_config, field='optimizer'):
  """The learning rate optax takes, as a function of the optimizer-update count.

  'constant' (and 'steps' without drops) is a float, so a constant rate keeps the optimizer
  state runs have always saved (a schedule adds a count to it); 'steps' multiplies the rate by
  each (update, factor) of `drops` from that update on (Zhang et al.'s x0.1 at 225k is
  ((225_000, 0.1),)); 'warmup_cosine' rises linearly from 0 over `warmup_steps`, then decays
  along a cosine to `end_factor` x the rate at `decay_steps` (warmup included).
  A config without `schedule` (a run from before the field) means 'steps' when it has drops."""
  rate, drops = optimizer_config['learning_rate'], tuple(optimizer_config.get('drops', ()))
  name = optimizer_config.get('schedule', 'steps' if drops else 'constant')
  if name not in SCHEDULES:
    raise UsageError(f"--config.{field}.schedule={name!r} names no schedule: use one of "
                     f"{', '.join(SCHEDULES)}")
  if drops and name != 'steps':
    raise UsageError(f"--config.{field}.drops={drops} applies to schedule 'steps' only: set "
                     f"--config.{field}.schedule=steps or --config.{field}.drops=''")
  if name == 'warmup_cosine':
    warmup, decay = optimizer_config['warmup_steps'], optimizer_config['decay_steps']
    end = optimizer_config.get('end_factor', 0.0)
    if not 0 <= warmup < decay or not 0.0 <= end <= 1.0:
      raise UsageError(f'--config.{field}: warmup_cosine needs 0 <= warmup_steps < '
                       f'decay_steps and end_factor in [0, 1] (got {warmup}, {decay}, {end})')
    return optax.warmup_cosine_decay_schedule(0.0, rate, warmup, decay, rate * end)
  if not drops:
    return rate
  if any(int(s) < 1 or not f > 0 for s, f in drops):
    raise UsageError(f'--config.{field}.drops={drops}: give (update, factor) pairs with '
                     'update >= 1 and factor > 0')
  return optax.piecewise_constant_schedule(rate, {int(s): f for s, f in drops})


def accumulate_steps(optimizer_config, field='optimizer') -> int:
  """Micro-batches whose mean gradient makes one optimizer update (1: every batch updates)."""
  k = optimizer_config.get('accumulate_steps', 1)
  if not isinstance(k, int) or k < 1:
    raise UsageError(f'--config.{field}.accumulate_steps={k} must be a whole number >= 1')
  return k


def learning_rate_at(optimizer_config, field='optimizer') -> Callable[[np.ndarray], np.ndarray]:
  """Training steps (micro-batches) -> the learning rate their update uses, for the logs:
  the schedule counts updates, one every accumulate_steps steps."""
  schedule = learning_rate_schedule(optimizer_config, field)
  k = accumulate_steps(optimizer_config, field)
  if not callable(schedule):
    return lambda steps: np.full(np.shape(steps), schedule, np.float64)
  return lambda steps: np.asarray(schedule(np.asarray(steps) // k), np.float64)


def check_blocks(config, prefix=''):
  """Build every optimizer block of a config, at any depth (a stage's): an unknown optimizer,
  setting or schedule is refused before anything trains."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      if key.endswith('optimizer'):
        make_optimizer(value, f'{prefix}{key}')
      else:
        check_blocks(value, f'{prefix}{key}.')


def make_optimizer(optimizer_config, field='optimizer') -> optax.GradientTransformation:
  """`{name: 'adam', learning_rate: 1e-3, ...}` -> optax.adam(learning_rate=1e-3, ...), with
  the rate of learning_rate_schedule; `accumulate_steps` k > 1 wraps it in optax.MultiSteps:
  k calls average their gradients and the k-th applies one update (the others change no
  parameter), so a batch of k x b fits a device that holds b. `field` is where the config
  holds it, for the error messages."""
  kwargs = {k: v for k, v in dict(optimizer_config).items() if k not in SCHEDULE_FIELDS}
  name = kwargs.pop('name')
  if 'learning_rate' in kwargs:
    kwargs['learning_rate'] = learning_rate_schedule(optimizer_config, field)
  k = accumulate_steps(optimizer_config, field)
  factory = getattr(optax, name, None)
  if not callable(factory):
    raise UsageError(f"unknown optimizer '{name}': use an optax optimizer name such as "
                     f"'adam', 'adamw', 'sgd' or 'rmsprop' in --config.{field}.name")
  try:
    if 'weight_decay' in kwargs and 'weight_decay' not in inspect.signature(factory).parameters:
      # PyTorch's coupled weight decay (SGD's weight_decay): wd * params added to the gradient.
      tx = optax.chain(optax.add_decayed_weights(kwargs.pop('weight_decay')), factory(**kwargs))
    else:
      tx = factory(**kwargs)
  except TypeError as e:
    raise UsageError(f"optimizer '{name}' rejects its settings ({e}); "
                     f'fix the fields under --config.{field}') from None
  return optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation() if k > 1 else tx
