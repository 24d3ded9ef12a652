"""The generic trainer: train state, optimizer, data-parallel step, and the resumable loop.

A model family supplies a loss_fn (losses.py) and an `advance` function that moves the state
on by `steps_per_call` steps (one jitted step per batch, or a lax.scan over many when the data
already sits on device). `fit` owns everything else: resume from the latest Orbax checkpoint,
checkpoints every `checkpoint_every` steps and at the end, metrics.jsonl, a progress bar, and
the NaN guard. Batch k and the key of step k are functions of (seed, k), so a run killed at
any point and started again ends with the same parameters as one never interrupted.

The state is any pytree: TrainState for one network, or a program's own (the GAN's holds two
Networks, each with its own optimizer state and BatchNorm statistics); fit only checkpoints
it and checks that its floating-point leaves and the metrics ending in 'loss' stay finite.
"""

import inspect
import json
import pathlib
import sys
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import tqdm

from colorjax import distributed
from colorjax.errors import UsageError


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any
  key: jax.Array


class Diverged(RuntimeError):
  """The loss (or the parameters) stopped being finite; nothing after the last good
  checkpoint was written."""


def learning_rate_schedule(learning_rate: float, drops=()):
  """A constant learning rate, multiplied by each (step, factor) of `drops` from that step
  on: Zhang et al.'s x0.1 at 225k is ((225_000, 0.1),)."""
  if not drops:
    return learning_rate
  return optax.piecewise_constant_schedule(learning_rate, {int(s): f for s, f in drops})


def make_optimizer(optimizer_config, field='optimizer') -> optax.GradientTransformation:
  """`{name: 'adam', learning_rate: 1e-3, ...}` -> optax.adam(learning_rate=1e-3, ...);
  `drops` ((step, factor), ...) lowers the learning rate (learning_rate_schedule); `field` is
  where the config holds it, for the error messages."""
  kwargs = dict(optimizer_config)
  name = kwargs.pop('name')
  drops = kwargs.pop('drops', ())
  if 'learning_rate' in kwargs:
    kwargs['learning_rate'] = learning_rate_schedule(kwargs['learning_rate'], drops)
  factory = getattr(optax, name, None)
  if not callable(factory):
    raise UsageError(f"unknown optimizer '{name}': use an optax optimizer name such as "
                     f"'adam', 'adamw', 'sgd' or 'rmsprop' in --config.{field}.name")
  try:
    if 'weight_decay' in kwargs and 'weight_decay' not in inspect.signature(factory).parameters:
      # PyTorch's coupled weight decay (SGD's weight_decay): wd * params added to the gradient.
      return optax.chain(optax.add_decayed_weights(kwargs.pop('weight_decay')), factory(**kwargs))
    return factory(**kwargs)
  except TypeError as e:
    raise UsageError(f"optimizer '{name}' rejects its settings ({e}); "
                     f'fix the fields under --config.{field}') from None


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


@flax.struct.dataclass
class Network:
  """One network of a state that trains several, each with its own optimizer."""
  params: Any
  opt_state: Any
  batch_stats: Any

  @property
  def variables(self):
    return {'params': self.params, 'batch_stats': self.batch_stats}


def init_network(model, tx, key, *sample_inputs) -> Network:
  variables = model.init(key, *sample_inputs, train=False)
  params = variables['params']
  return Network(params=params, opt_state=tx.init(params),
                 batch_stats=variables.get('batch_stats', {}))


def advance_with_batches(train_step, batches_from: Callable):
  """An `advance` for fit() that feeds `train_step` from a data pipeline.

  `batches_from(start_step)` returns an iterator of (global) batches beginning with batch
  `start_step`; it is called once, at the first step this process runs, so a resumed run
  continues with exactly the batches an unbroken run would have seen.
  """
  batches = None

  def advance(state, step):
    nonlocal batches
    if batches is None:
      batches = batches_from(step)
    return train_step(state, next(batches))

  return advance


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh, axis 'data', over the given devices (default: every device of every process)."""
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), ('data',))


def replicate(state, mesh: Mesh):
  """Place the state on every device of the mesh, as shard_train_step returns it; a state
  left where it was created would make the second step compile again."""
  return jax.device_put(state, NamedSharding(mesh, P()))


def shard_train_step(train_step, mesh: Mesh):
  """jit a (state, batch) step data-parallel: batch split over 'data', state replicated.

  The loss is a mean over the global batch, so XLA inserts the gradient all-reduce itself.
  The old state is donated: its buffers are reused for the new one.
  """
  replicated = NamedSharding(mesh, P())
  return jax.jit(train_step, in_shardings=(replicated, NamedSharding(mesh, P('data'))),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def _all_finite(tree) -> bool:
  """Every floating-point leaf of a state (params, optimizer moments, batch statistics of
  every network it holds) is finite. One jitted reduction: its scalar answer is replicated,
  so every process reads it, however the state is sharded."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return bool(_finite(leaves))


@jax.jit
def _finite(leaves):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _losses(row) -> dict:
  """The loss entries of a metrics row ('loss', or 'd_loss' and 'g_loss' of a GAN)."""
  return {k: v for k, v in row.items() if k.endswith('loss')}


class MetricsLog:
  """metrics.jsonl, one line per step, written by process 0. On resume, lines past the
  checkpoint are dropped, so the file always describes the parameters that exist."""

  def __init__(self, path: pathlib.Path, resume_step: int):
    self.path = path if distributed.is_main() else None
    if self.path is None:
      return
    kept = []
    if path.exists():
      kept = [line for line in path.read_text().splitlines()
              if line and json.loads(line)['step'] < resume_step]
    path.write_text(''.join(line + '\n' for line in kept))

  def write(self, rows):
    if self.path is None:
      return
    with self.path.open('a') as f:
      for row in rows:
        f.write(json.dumps(row) + '\n')


def read_metrics(workdir) -> list[dict]:
  path = pathlib.Path(workdir) / 'metrics.jsonl'
  return [json.loads(line) for line in path.read_text().splitlines() if line]


def _rows(first_step, metrics, steps_per_call):
  """Metrics of one advance call (leading axis = steps, or scalars for one step) -> rows."""
  metrics = {k: np.asarray(v).reshape(steps_per_call, -1) for k, v in metrics.items()}
  rows = []
  for i in range(steps_per_call):
    row = {'step': first_step + i}
    for k, v in metrics.items():
      row[k] = v[i].tolist() if v.shape[1] > 1 else float(v[i, 0])
    rows.append(row)
  return rows


def _shapes_by_path(tree) -> dict[str, tuple]:
  """'params/Conv_0/kernel' -> shape, for any pytree (dataclass fields, dict keys and
  sequence indices all become path parts, as in Orbax's metadata)."""
  def part(key):
    return str(getattr(key, 'name', getattr(key, 'key', getattr(key, 'idx', key))))
  return {'/'.join(map(part, path)): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def saved_steps(workdir) -> list[int]:
  """The steps of the complete checkpoints in <workdir>/checkpoints, newest first. A save
  killed before its rename leaves only an `N.orbax-checkpoint-tmp-*` folder: not one."""
  directory = pathlib.Path(workdir) / 'checkpoints'
  if not directory.is_dir():
    return []
  return sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit()), reverse=True)


class Checkpoints:
  """Orbax CheckpointManager in <workdir>/checkpoints; saves are atomic (written to a
  temporary folder and renamed), so a kill mid-save leaves the last good checkpoint."""

  def __init__(self, workdir: pathlib.Path, max_to_keep: int):
    self.manager = ocp.CheckpointManager(
        (workdir / 'checkpoints').absolute(), item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore(self, target, step: int | None = None):
    """The checkpoint at `step` (default the latest), shaped as the pytree `target`."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_newest_readable(self, target, set_aside: bool = False):
    """(state, step) of the newest checkpoint that reads, or (target, None) when none does.

    A newer checkpoint that does not read (a truncated file) is skipped with a one-line
    warning; with `set_aside` (the trainer, which will save that step again) it is renamed
    `corrupt-N`, kept for inspection. One whose arrays do not fit `target` is a UsageError.
    A step that vanishes while it is read (deleted by a run training there) is skipped."""
    directory = pathlib.Path(self.manager.directory)
    for step in saved_steps(directory.parent):
      try:
        mismatch = self.mismatch(target, step)
        if mismatch is None:
          return self.restore(target, step), step
      except Exception as e:  # Orbax and its codecs raise many types; all mean unreadable
        if not (directory / str(step)).exists():
          continue
        if distributed.is_main():
          tqdm.write(f'warning: checkpoint {step} in {directory} cannot be read '
                     f'({type(e).__name__}); using the one before it', file=sys.stderr)
          if set_aside:
            (directory / str(step)).rename(directory / f'corrupt-{step}')
        continue
      raise UsageError(f'the checkpoint in {directory} does not match the config.json beside '
                       f'it ({mismatch}); pass the workdir it was trained in')
    if set_aside:
      self.manager.reload()
    return target, None

  def mismatch(self, target, step: int | None = None) -> str | None:
    """The first difference between the checkpoint's arrays and `target`'s (a state or its
    eval_shape), in words; None when they match. Checked before restoring, where Orbax
    would fail deep inside its asynchronous reads."""
    step = self.latest_step() if step is None else step
    saved = _shapes_by_path(self.manager.item_metadata(step).tree)
    wanted = _shapes_by_path(target)
    for path in sorted(set(saved) | set(wanted)):
      if saved.get(path) != wanted.get(path):
        return (f"{path}: shape {wanted.get(path, 'absent')} expected, "
                f"{saved.get(path, 'absent')} saved")
    return None

  def save(self, step: int, state):
    self.manager.save(step, args=ocp.args.StandardSave(state))

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def check_schedule(num_steps, steps_per_call, checkpoint_every, log_every):
  """The loop's counts, checked before anything trains."""
  if steps_per_call < 1:
    raise UsageError(f'--config.steps_per_call={steps_per_call} must be at least 1')
  for name, value in (('num_steps', num_steps), ('checkpoint_every', checkpoint_every),
                      ('log_every', log_every)):
    if value <= 0 or value % steps_per_call:
      raise UsageError(f'--config.{name}={value} must be a positive multiple of '
                       f'steps_per_call={steps_per_call}')


def fit(*, workdir, state, advance: Callable, num_steps: int,
        steps_per_call: int = 1, checkpoint_every: int = 1000, log_every: int = 100,
        max_to_keep: int = 2, description: str = 'train'):
  """Run `advance(state, step) -> (state, metrics)` until `num_steps`, resumably.

  `state` is the freshly initialized state; it is replaced by the latest checkpoint when one
  exists. Metrics are fetched from the device only every `log_every` steps and before each
  checkpoint, so the loop dispatches steps without waiting on the host.
  """
  check_schedule(num_steps, steps_per_call, checkpoint_every, log_every)
  workdir = pathlib.Path(workdir)
  checkpoints = Checkpoints(workdir, max_to_keep)
  try:
    state, start = checkpoints.restore_newest_readable(state, set_aside=True)
    start = start or 0
    if start >= num_steps:
      if distributed.is_main():
        tqdm.write(f'{description}: already trained to step {start}, nothing to do')
      return state
    log = MetricsLog(workdir / 'metrics.jsonl', start)
    pending = []
    with tqdm(total=num_steps, initial=start, desc=description, unit='step',
              dynamic_ncols=True, disable=not distributed.is_main()) as bar:

      def flush(end_step):
        metrics = distributed.to_host([m for _, m in pending])
        rows = [r for (first, _), m in zip(pending, metrics)
                for r in _rows(first, m, steps_per_call)]
        pending.clear()
        bad_loss = next((r['step'] for r in rows
                         if not all(np.all(np.isfinite(v)) for v in _losses(r).values())), None)
        what = None
        if bad_loss is not None:
          what = (f'the loss became NaN or Inf at step {bad_loss} (computed from the '
                  f'parameters after {bad_loss} updates)')
        elif not _all_finite(state):
          what = (f'the parameters became NaN or Inf between steps {end_step - len(rows)} and '
                  f'{end_step} (the losses up to there were finite)')
        if what is not None:
          last = checkpoints.latest_step()
          kept = (f'the last good checkpoint (step {last}) in {workdir} is intact'
                  if last is not None else 'no checkpoint had been written yet')
          raise Diverged(f'{what}; {kept}. Lower the learning rate or check the data, then '
                         'run again.')
        log.write(rows)
        bar.set_postfix({k: f'{np.mean(v):.4g}' for k, v in _losses(rows[-1]).items()})
        bar.update(end_step - bar.n)

      for step in range(start, num_steps, steps_per_call):
        state, metrics = advance(state, step)
        pending.append((step, metrics))
        end = step + steps_per_call
        must_save = end % checkpoint_every == 0 or end == num_steps
        if must_save or end % log_every == 0:
          flush(end)
        if must_save:
          checkpoints.save(end, state)
    return state
  finally:
    checkpoints.close()
