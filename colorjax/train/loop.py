"""The resumable training loop: fit runs `advance(state, step) -> (state, metrics)` for a
Loop's steps, resuming from the latest checkpoint, with checkpoints, metrics.jsonl,
TensorBoard, a progress bar, evaluations while training and the NaN guard.

A program supplies `advance` (state.advance_with_batches feeds one jitted step per batch;
norm_ablation's runs a lax.scan over many), so batch k and the key of step k are functions of
(seed, k): a run killed at any point and started again ends with the same parameters as one
never interrupted. The state is any pytree (a TrainState, the GAN's two networks, the
ablation's stacked runs); fit only checkpoints it and checks that its floating-point leaves
and the metrics ending in 'loss' stay finite.
"""

import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from colorjax import distributed
from colorjax.errors import UsageError
from colorjax.train import metrics_log, profiler, tensorboard, throughput
from colorjax.train.checkpoint import BEST_FOLDER, Checkpoints
from colorjax.configs import Loop


class Diverged(RuntimeError):
  """The loss (or the parameters) stopped being finite; nothing after the last good
  checkpoint was written."""


@jax.jit
def _finite(leaves):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _all_finite(tree) -> bool:
  """Every floating-point leaf of a state (params, optimizer moments, batch statistics of
  every network it holds) is finite. One jitted reduction: its scalar answer is replicated,
  so every process reads it, however the state is sharded."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return bool(_finite(leaves))


def _check_finite(rows, state, end_step, checkpoints, workdir):
  """Raise Diverged, naming the step, when a loss of `rows` or a leaf of `state` is not
  finite."""
  bad_loss = next((r['step'] for r in rows if not all(
      np.all(np.isfinite(v)) for v in metrics_log.losses(r).values())), None)
  if bad_loss is not None:
    what = (f'the loss became NaN or Inf at step {bad_loss} (computed from the parameters '
            f'after {bad_loss} updates)')
  elif not _all_finite(state):
    what = (f'the parameters became NaN or Inf between steps {end_step - len(rows)} and '
            f'{end_step} (the losses up to there were finite)')
  else:
    return
  last = checkpoints.latest_step()
  kept = (f'the last good checkpoint (step {last}) in {workdir} is intact'
          if last is not None else 'no checkpoint had been written yet')
  raise Diverged(f'{what}; {kept}. Lower the learning rate or check the data, then run again.')


def fit(workdir, state, advance: Callable, loop: Loop, *, description: str = 'train',
        images_per_step: int = 0, flops_per_step: float | None = None,
        learning_rates: dict | None = None, eval_fn: Callable | None = None):
  """Run `advance(state, step) -> (state, metrics)` for `loop.num_steps` steps, resumably.

  `state` is the freshly initialized state; it is replaced by the latest checkpoint when one
  exists. Metrics are fetched from the device only every `log_every` steps, before each
  checkpoint and before each evaluation, so the loop dispatches steps without waiting on the
  host. Each row of metrics.jsonl also carries the learning rates ({name: steps -> rate},
  optim.learning_rate_at) and the throughput since the previous flush (throughput.Meter:
  `images_per_step` is the global batch; `flops_per_step`, XLA's estimate of one step,
  gives TFLOP/s).

  With `eval_fn(state) -> (metrics {name: float}, image (H, W, 3) or None)` and
  `loop.eval_every`, the state after every eval_every steps (and the last) is evaluated into
  eval_metrics.jsonl and TensorBoard (its time is left out of the throughput);
  `loop.best_metric` keeps the best state in BEST_FOLDER. An evaluation reads the state and
  changes nothing, so a run that evaluates ends with the same parameters as one that does
  not. `loop.profile_steps` traces those steps into <workdir>/profile.
  """
  evaluates = eval_fn is not None and loop.eval_every > 0
  loop.check(evaluates=eval_fn is not None)
  workdir = pathlib.Path(workdir)
  checkpoints = Checkpoints(workdir, loop.max_to_keep, keep_period=loop.keep_period)
  best = (Checkpoints(workdir, 1, folder=BEST_FOLDER, best_metric=loop.best_metric,
                      best_mode=loop.best_mode) if evaluates and loop.best_metric else None)
  board, trace = None, profiler.Trace(workdir / 'profile', loop.profile_steps)
  try:
    state, start = checkpoints.resume(state)
    start = start or 0
    if start >= loop.num_steps:
      if distributed.is_main():
        tqdm.write(f'{description}: already trained to step {start}, nothing to do')
      return state
    if best is not None:
      best.drop_after(start)
    log = metrics_log.MetricsLog(workdir / metrics_log.TRAIN_FILE, start)
    eval_log = metrics_log.MetricsLog(workdir / metrics_log.EVAL_FILE, start + 1) if evaluates \
        else None
    board = tensorboard.Writer(workdir, start)
    meter = throughput.Meter(images_per_step)
    pending = []  # (first step, metrics on device) of the calls since the last flush
    with tqdm(total=loop.num_steps, initial=start, desc=description, unit='step',
              dynamic_ncols=True, disable=not distributed.is_main()) as bar:
      for step in range(start, loop.num_steps, loop.steps_per_call):
        end = step + loop.steps_per_call
        trace.before(step, end)
        state, metrics = advance(state, step)
        meter.called(loop.steps_per_call)
        pending.append((step, metrics))
        trace.after(end, state)
        must_save = end % loop.checkpoint_every == 0 or end == loop.num_steps
        must_eval = evaluates and (end % loop.eval_every == 0 or end == loop.num_steps)
        if must_save or must_eval or end % loop.log_every == 0:
          on_host = distributed.to_host([m for _, m in pending])
          rows = [row for (first, _), m in zip(pending, on_host)
                  for row in metrics_log.metric_rows(first, m, loop.steps_per_call)]
          pending = []
          _check_finite(rows, state, end, checkpoints, workdir)
          figures = meter.read(flops_per_step)
          steps = np.asarray([r['step'] for r in rows])
          rates = {name: rate(steps) for name, rate in (learning_rates or {}).items()}
          for i, row in enumerate(rows):
            row.update({name: float(r[i]) for name, r in rates.items()}, **figures)
          log.write(rows)
          board.scalars(rows, 'train')
          bar.set_postfix({k: f'{np.mean(v):.4g}'
                           for k, v in metrics_log.losses(rows[-1]).items()})
          bar.update(end - bar.n)
        evaluation = None
        if must_eval:
          with meter.excluded():
            evaluation, image = eval_fn(state)
          if best is not None and loop.best_metric not in evaluation:
            raise UsageError(f'--config.best_metric={loop.best_metric} is not a metric of this '
                             f"evaluation: choose one of {', '.join(evaluation)}")
          eval_log.write([{'step': end, **evaluation}])
          board.scalars([{'step': end, **evaluation}], 'eval')
          if image is not None:
            board.image('eval/samples', image, end)
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
