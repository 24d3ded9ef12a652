"""The resumable training loop: fit runs `advance(state, step) -> (state, metrics)` for a
Loop's steps, resuming from the latest checkpoint, with checkpoints, metrics.jsonl,
TensorBoard, a progress bar, evaluations while training and the NaN guard.

A program supplies `advance` (state.advance_with_batches feeds one jitted step per batch;
norm_ablation's runs a lax.scan over many), so batch k and the key of step k are functions of
(seed, k): a run killed at any point and started again ends with the same parameters as one
never interrupted. The state is any pytree (a TrainState, the GAN's two networks, the
ablation's stacked runs); fit only checkpoints it and checks that its floating-point leaves
and the metrics ending in 'loss' stay finite.

SIGTERM or SIGHUP (a scheduler's preemption) while fit runs ends the step in flight, saves a
checkpoint of it within Loop.preempt_grace_s and raises Preempted; resuming from that
checkpoint ends bit for bit where an unbroken run ends.
"""

import os
import pathlib
import signal
import sys
import threading
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from colorjax import distributed
from colorjax.configs import Loop
from colorjax.errors import UsageError
from colorjax.train import metrics_log, profiler, tensorboard, throughput, workdirs
from colorjax.train.checkpoint import BEST_FOLDER, Checkpoints


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


PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Preempted(BaseException):
  """SIGTERM or SIGHUP stopped the run; `step`: the step fit saved before stopping (None when
  the signal came outside training). A BaseException, as KeyboardInterrupt is, so that no
  `except Exception` on its way up takes it for an error. The command exits 128 + signum."""

  def __init__(self, signum: int, step: int | None = None):
    self.signum, self.step = signum, step
    saved = f' after step {step}, which is saved' if step is not None else ''
    super().__init__(f'stopped by {signal.Signals(signum).name}{saved}: run the same command '
                     'again to resume')


class _Preemption:
  """SIGTERM and SIGHUP while fit runs: noted, acted on at the next step boundary. The grace
  period starts when Python sees the signal; a save still unfinished then is abandoned by
  os._exit, which leaves the last complete checkpoint intact (saves are renamed into place)."""

  def __init__(self, grace_s: float):
    self.grace_s, self.signum, self.timer, self.previous = grace_s, None, None, {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
      self.previous = {s: signal.signal(s, self._note) for s in PREEMPTION_SIGNALS}
    return self

  def __exit__(self, error_type, *_):
    for s, handler in self.previous.items():
      signal.signal(s, handler)
    if self.timer is not None:
      self.timer.cancel()
    if self.signum and error_type is None:  # it came after the last step: deliver it now
      signal.raise_signal(self.signum)

  def _note(self, signum, frame):
    if self.signum is None:
      self.signum = signum
      self.timer = threading.Timer(self.grace_s, self._give_up)
      self.timer.daemon = True
      self.timer.start()

  def _give_up(self):
    print(f'error: {distributed.prefix()}stopped by {signal.Signals(self.signum).name}: the '
          f'step in flight could not be saved within preempt_grace_s={self.grace_s:g} s; the '
          'last complete checkpoint is intact: run the same command again to resume from it',
          file=sys.stderr, flush=True)
    os._exit(128 + self.signum)

  def agreed(self) -> int:
    """The signal to stop for, 0 for none, the same in every process: with several, the
    largest signal any has seen (a cross-process reduction, so all save the same step or
    none does)."""
    seen = self.signum or 0
    if jax.process_count() == 1:
      return seen
    return int(np.max(multihost_utils.process_allgather(np.int32(seen))))


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

  SIGTERM or SIGHUP: the advance call in flight ends, its metrics are logged, its state saved
  (waiting for the save), then Preempted is raised (module docstring).
  """
  evaluates = eval_fn is not None and loop.eval_every > 0
  loop.check(evaluates=eval_fn is not None)
  workdir = pathlib.Path(workdir)
  checkpoints = Checkpoints(workdir, loop.max_to_keep, keep_period=loop.keep_period)
  best = (Checkpoints(workdir, 1, folder=BEST_FOLDER, best_metric=loop.best_metric,
                      best_mode=loop.best_mode) if evaluates and loop.best_metric else None)
  with _Preemption(loop.preempt_grace_s) as preemption:
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
          signum = preemption.agreed()
          must_save = signum or end % loop.checkpoint_every == 0 or end == loop.num_steps
          must_eval = evaluates and (end % loop.eval_every == 0 or end == loop.num_steps)
          if must_save or must_eval or end % loop.log_every == 0:
            workdirs.check_held(workdir)  # before a write could re-create a deleted workdir
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
          if signum:
            checkpoints.wait()  # say "saved" only of a step that is: a failed save raises
            raise Preempted(signum, end)
      return state
    except Exception:
      workdirs.check_held(workdir)  # a workdir deleted under the run: say that, not what broke
      raise
    finally:
      failing = sys.exc_info()[0] is not None
      trace.stop()
      if board is not None:
        board.close()
      checkpoints.close(failing)
      if best is not None:
        best.close(failing)
