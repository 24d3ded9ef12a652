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

from colorjax import distributed, tensorboard, throughput
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
  """One compiled function: run eagerly, each initializer and optimizer-state leaf compiles
  on its own (over 100 XLA compiles for the U-Net)."""

  @jax.jit
  def init(key, *sample_inputs):
    variables = model.init(key, *sample_inputs, train=False)
    params = variables['params']
    return Network(params=params, opt_state=tx.init(params),
                   batch_stats=variables.get('batch_stats', {}))

  return init(key, *sample_inputs)


class advance_with_batches:
  """An `advance` for fit() that feeds the jitted `train_step` from a data pipeline.

  `batches_from(start_step)` returns an iterator of (global) batches beginning with batch
  `start_step`; it is called once, at the first step this process runs, so a resumed run
  continues with exactly the batches an unbroken run would have seen. From then on
  `flops_per_step` holds XLA's estimate of one step (throughput.step_flops), which fit turns
  into TFLOP/s.
  """

  def __init__(self, train_step, batches_from: Callable):
    self.train_step, self.batches_from = train_step, batches_from
    self.batches, self.flops_per_step = None, None

  def __call__(self, state, step):
    if self.batches is None:
      self.batches = self.batches_from(step)
      batch = next(self.batches)
      self.flops_per_step = throughput.step_flops(self.train_step, state, batch)
      return self.train_step(state, batch)
    return self.train_step(state, next(self.batches))


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
  """metrics.jsonl (one line per step) or eval_metrics.jsonl (one per evaluation), written by
  process 0. On resume, lines from `resume_step` on are dropped, so the file always
  describes the parameters that exist (an eval row's step counts the updates before it, so
  an evaluation of the checkpoint's own state is kept with `resume_step` one past it)."""

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


EVAL_FILE = 'eval_metrics.jsonl'


def read_metrics(workdir, name='metrics.jsonl') -> list[dict]:
  """The rows of a workdir's metrics.jsonl (or of EVAL_FILE: [] when it never evaluated)."""
  path = pathlib.Path(workdir) / name
  if name == EVAL_FILE and not path.exists():
    return []
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


def saved_steps(workdir, folder: str = 'checkpoints') -> list[int]:
  """The steps of the complete checkpoints in <workdir>/<folder>, newest first. A save
  killed before its rename leaves only an `N.orbax-checkpoint-tmp-*` folder: not one."""
  directory = pathlib.Path(workdir) / folder
  if not directory.is_dir():
    return []
  return sorted((int(p.name) for p in directory.iterdir() if p.name.isdigit()), reverse=True)


def _step_reader() -> ocp.Checkpointer:
  """Reads one step folder as CheckpointManager writes it (its one item, 'default'). Reads
  go through this, not a manager: building a manager stats every step folder, and fails
  when a run training in that folder deletes one meanwhile (max_to_keep)."""
  return ocp.Checkpointer(
      ocp.CompositeCheckpointHandler(default=ocp.StandardCheckpointHandler()))


def read_checkpoint(step_dir: pathlib.Path, target):
  """The checkpoint in `step_dir` (<folder>/<step>), shaped as the pytree `target`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  with _step_reader() as reader:
    return reader.restore(step_dir, args=ocp.args.Composite(
        default=ocp.args.StandardRestore(abstract)))['default']


def checkpoint_mismatch(step_dir: pathlib.Path, target) -> str | None:
  """The first difference between the arrays saved in `step_dir` and `target`'s (a state or
  its eval_shape), in words; None when they match. Checked before restoring, where Orbax
  would fail deep inside its asynchronous reads."""
  with _step_reader() as reader:
    saved = _shapes_by_path(reader.metadata(step_dir).item_metadata['default'].tree)
  wanted = _shapes_by_path(target)
  for path in sorted(set(saved) | set(wanted)):
    if saved.get(path) != wanted.get(path):
      return (f"{path}: shape {wanted.get(path, 'absent')} expected, "
              f"{saved.get(path, 'absent')} saved")
  return None


def restore_newest_readable(directory: pathlib.Path, target, set_aside: bool = False):
  """(state, step) of the newest checkpoint in `directory` that reads, or (target, None)
  when none does.

  A newer checkpoint that does not read (a truncated file) is skipped with a one-line
  warning; with `set_aside` (the trainer, which will save that step again) it is renamed
  `corrupt-N`, kept for inspection. One whose arrays do not fit `target` is a UsageError.
  A step that vanishes while it is read (deleted by a run training there) is skipped."""
  directory = pathlib.Path(directory).absolute()
  for step in saved_steps(directory.parent, directory.name):
    step_dir = directory / str(step)
    try:
      mismatch = checkpoint_mismatch(step_dir, target)
      if mismatch is None:
        return read_checkpoint(step_dir, target), step
    except Exception as e:  # Orbax and its codecs raise many types; all mean unreadable
      if not step_dir.exists():
        continue
      if distributed.is_main():
        tqdm.write(f'warning: checkpoint {step} in {directory} cannot be read '
                   f'({type(e).__name__}); using the one before it', file=sys.stderr)
        if set_aside:
          step_dir.rename(directory / f'corrupt-{step}')
      continue
    raise UsageError(f'the checkpoint in {directory} does not match the config.json beside '
                     f'it ({mismatch}); pass the workdir it was trained in')
  return target, None


BEST_FOLDER = 'checkpoints_best'


class Checkpoints:
  """Orbax CheckpointManager in <workdir>/checkpoints, for the run that trains there; saves
  are atomic (written to a temporary folder and renamed), so a kill mid-save leaves the last
  good checkpoint. Anyone else reads with restore_newest_readable.

  `keep_period` keeps every checkpoint at a multiple of it besides the `max_to_keep` newest
  (milestones). With `best_metric`, Orbax keeps the `max_to_keep` best by the metrics each
  save carries (`best_mode` 'max' or 'min'), not the newest: so the best live in a folder of
  their own (BEST_FOLDER), and resuming always reads the newest from checkpoints/."""

  def __init__(self, workdir: pathlib.Path, max_to_keep: int | None, *,
               folder='checkpoints', keep_period=0, best_metric='', best_mode='max'):
    self.directory = (pathlib.Path(workdir) / folder).absolute()
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, keep_period=keep_period or None,
            best_fn=(lambda metrics: metrics[best_metric]) if best_metric else None,
            best_mode=best_mode))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def resume(self, target):
    """(state, step) of the newest readable checkpoint, unreadable newer ones set aside
    (restore_newest_readable); (target, None) when none reads."""
    state, step = restore_newest_readable(self.directory, target, set_aside=True)
    self.manager.reload()
    return state, step

  def save(self, step: int, state, metrics: dict | None = None):
    self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)

  def drop_after(self, step: int):
    """Delete the checkpoints past `step`: a killed run's, which its resumed run saves again
    (and, for the best, scores the same: its evaluations repeat exactly)."""
    for saved in self.manager.all_steps():
      if saved > step:
        self.manager.delete(saved)

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


# What fit takes from a stage config besides num_steps (configs.schedule), with the value a
# config from before a field means.
LOOP_DEFAULTS = dict(checkpoint_every=1000, log_every=100, max_to_keep=2, eval_every=0,
                     best_metric='', best_mode='max', keep_period=0, profile_steps=())


def loop_options(config) -> dict:
  """The keywords fit takes from a stage config (LOOP_DEFAULTS where it lacks one)."""
  return {name: config.get(name, default) for name, default in LOOP_DEFAULTS.items()}


def check_schedule(num_steps, steps_per_call, *, checkpoint_every, log_every, max_to_keep=2,
                   eval_every=0, best_metric='', best_mode='max', keep_period=0,
                   profile_steps=()):
  """The loop's counts, checked before anything trains."""
  del max_to_keep  # Orbax's to judge
  if steps_per_call < 1:
    raise UsageError(f'--config.steps_per_call={steps_per_call} must be at least 1')
  for name, value in (('num_steps', num_steps), ('checkpoint_every', checkpoint_every),
                      ('log_every', log_every)):
    if value <= 0 or value % steps_per_call:
      raise UsageError(f'--config.{name}={value} must be a positive multiple of '
                       f'steps_per_call={steps_per_call}')
  if eval_every < 0 or eval_every % steps_per_call:
    raise UsageError(f'--config.eval_every={eval_every} must be 0 (off) or a positive '
                     f'multiple of steps_per_call={steps_per_call}')
  if keep_period < 0 or keep_period % checkpoint_every:
    raise UsageError(f'--config.keep_period={keep_period} must be 0 (off) or a multiple of '
                     f'checkpoint_every={checkpoint_every} (milestones are checkpoints kept)')
  if best_metric and not eval_every:
    raise UsageError(f'--config.best_metric={best_metric} needs evaluations: set '
                     '--config.eval_every to a number of steps')
  if best_mode not in ('max', 'min'):
    raise UsageError(f"--config.best_mode={best_mode!r}: use 'max' or 'min'")
  if profile_steps and not (len(profile_steps) == 2 and 0 <= profile_steps[0] <= profile_steps[1]
                            < num_steps):
    raise UsageError(f'--config.profile_steps={profile_steps}: give FIRST,LAST steps with 0 <= '
                     f'FIRST <= LAST < num_steps={num_steps}, or leave it empty')


class _Trace:
  """A jax.profiler trace of the calls that run steps FIRST..LAST (profile_steps) into
  <workdir>/profile (TensorBoard's profile plugin and Perfetto read it)."""

  def __init__(self, folder: pathlib.Path, profile_steps):
    self.folder, self.steps, self.on = folder, tuple(profile_steps), False

  def before(self, step: int, end: int):
    if self.steps and not self.on and step <= self.steps[0] < end:
      jax.profiler.start_trace(str(self.folder))
      self.on = True

  def after(self, end: int, state):
    if self.on and end > self.steps[1]:
      jax.block_until_ready(state)  # the traced steps' device work belongs in the trace
      self.stop()

  def stop(self):
    if self.on:
      jax.profiler.stop_trace()
      self.on = False


def fit(*, workdir, state, advance: Callable, num_steps: int,
        steps_per_call: int = 1, checkpoint_every: int = 1000, log_every: int = 100,
        max_to_keep: int = 2, description: str = 'train', images_per_step: int = 0,
        flops_per_step: float | None = None, learning_rates: dict | None = None,
        evaluate: Callable | None = None, eval_every: int = 0, best_metric: str = '',
        best_mode: str = 'max', keep_period: int = 0, profile_steps=()):
  """Run `advance(state, step) -> (state, metrics)` until `num_steps`, resumably.

  `state` is the freshly initialized state; it is replaced by the latest checkpoint when one
  exists. Metrics are fetched from the device only every `log_every` steps, before each
  checkpoint and before each evaluation, so the loop dispatches steps without waiting on the
  host. Each row of metrics.jsonl also carries the learning rates ({name: steps -> rate},
  learning_rate_at) and the throughput since the previous flush (throughput.Meter:
  `images_per_step` is the global batch; `flops_per_step`, or advance's own, gives TFLOP/s).

  With `evaluate(state) -> (metrics {name: float}, image (H, W, 3) or None)` and
  `eval_every`, the state after every eval_every steps (and the last) is evaluated into
  EVAL_FILE and TensorBoard (its time is left out of the throughput); `best_metric` keeps
  the best state in BEST_FOLDER. An evaluation reads the state and changes nothing, so a run
  that evaluates ends with the same parameters as one that does not. Scalars and eval
  images go to <workdir>/tensorboard; `profile_steps` (FIRST, LAST) traces those steps.
  """
  check_schedule(num_steps, steps_per_call, checkpoint_every=checkpoint_every,
                 log_every=log_every, eval_every=eval_every if evaluate else 0,
                 best_metric=best_metric if evaluate else '', best_mode=best_mode,
                 keep_period=keep_period, profile_steps=profile_steps)
  workdir = pathlib.Path(workdir)
  checkpoints = Checkpoints(workdir, max_to_keep, keep_period=keep_period)
  best = (Checkpoints(workdir, 1, folder=BEST_FOLDER, best_metric=best_metric,
                      best_mode=best_mode) if evaluate and best_metric else None)
  board, trace = None, _Trace(workdir / 'profile', profile_steps)
  try:
    state, start = checkpoints.resume(state)
    start = start or 0
    if start >= num_steps:
      if distributed.is_main():
        tqdm.write(f'{description}: already trained to step {start}, nothing to do')
      return state
    if best is not None:
      best.drop_after(start)
    log = MetricsLog(workdir / 'metrics.jsonl', start)
    eval_log = MetricsLog(workdir / EVAL_FILE, start + 1) if evaluate else None
    board = tensorboard.Writer(workdir, start)
    meter = throughput.Meter(images_per_step)
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
        figures = meter.read(flops_per_step or getattr(advance, 'flops_per_step', None))
        steps = np.asarray([r['step'] for r in rows])
        rates = {name: rate(steps) for name, rate in (learning_rates or {}).items()}
        for i, row in enumerate(rows):
          row.update({name: float(r[i]) for name, r in rates.items()}, **figures)
        log.write(rows)
        board.scalars(rows, 'train')
        bar.set_postfix({k: f'{np.mean(v):.4g}' for k, v in _losses(rows[-1]).items()})
        bar.update(end_step - bar.n)

      def evaluate_at(end_step) -> dict:
        with meter.excluded():
          metrics, image = evaluate(state)
        if best is not None and best_metric not in metrics:
          raise UsageError(f'--config.best_metric={best_metric} is not a metric of this '
                           f"evaluation: choose one of {', '.join(metrics)}")
        eval_log.write([{'step': end_step, **metrics}])
        board.scalars([{'step': end_step, **metrics}], 'eval')
        if image is not None:
          board.image('eval/samples', image, end_step)
        return metrics

      for step in range(start, num_steps, steps_per_call):
        trace.before(step, step + steps_per_call)
        state, metrics = advance(state, step)
        meter.called(steps_per_call)
        pending.append((step, metrics))
        end = step + steps_per_call
        trace.after(end, state)
        must_save = end % checkpoint_every == 0 or end == num_steps
        must_eval = bool(evaluate and eval_every) and (end % eval_every == 0 or end == num_steps)
        if must_save or must_eval or end % log_every == 0:
          flush(end)
        evaluation = evaluate_at(end) if must_eval else None
        if must_save:
          checkpoints.save(end, state)
        if evaluation is not None and best is not None:
          best.save(end, state, evaluation)
    return state
  finally:
    trace.stop()
    if board is not None:
      board.close()
    checkpoints.close()
    if best is not None:
      best.close()
