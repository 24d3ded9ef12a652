"""Training throughput: wall time between the trainer's flushes -> steps/s, step time,
images/s and, where XLA estimates the FLOPs of a step, TFLOP/s; and the peak of known
accelerators, for MFU."""

import contextlib
import time

# The figures Meter.read adds to each metrics row: wall-clock, so no two runs share them.
FIELDS = ('steps_per_second', 'step_time_ms', 'images_per_second', 'tflops_per_second')

# Dense bf16 peak TFLOP/s of one device, by a part of jax's device_kind (NVIDIA's datasheets,
# SXM, without structured sparsity). A run in float32 cannot reach these.
PEAK_TFLOPS = (('H100', 989.0), ('H200', 989.0), ('A100', 312.0))


def peak_tflops(device_kind: str, configured: float = 0.0) -> float | None:
  """`configured` when > 0, else the table's peak for this device; None when unknown (CPU)."""
  if configured > 0:
    return configured
  return next((peak for name, peak in PEAK_TFLOPS if name in device_kind), None)


def step_flops(jitted, *args) -> float | None:
  """XLA's estimate of the FLOPs of one call of `jitted` on `args` (global: the whole batch
  over every device). Read from the lowered program, so nothing compiles a second time; None
  where the backend gives no estimate. The body of a lax.scan counts once, whatever its
  length: estimate one step, not a scan of them."""
  return lowered_flops(jitted.lower(*args))


def lowered_flops(lowered) -> float | None:
  """step_flops of a program already lowered (jax.stages.Lowered)."""
  cost = lowered.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per program
    cost = cost[0] if cost else None
  flops = (cost or {}).get('flops', -1.0)
  return float(flops) if flops > 0 else None


class Meter:
  """Steps counted between reads, over wall time: from the previous read, or at first from
  the moment the first call returned (its compile excluded; its execution too where the
  call waits for it), input, host work and checkpoints included, as a researcher's clock
  sees it."""

  def __init__(self, images_per_step: int, clock=time.perf_counter):
    self.images_per_step, self.clock = images_per_step, clock
    self.since, self.steps, self.left_out = None, 0, 0.0

  def called(self, steps: int):
    if self.since is None:
      self.since = self.clock()
    self.steps += steps

  @contextlib.contextmanager
  def excluded(self):
    """Time spent inside (an evaluation) is not training time: left out of the next read."""
    start = self.clock()
    try:
      yield
    finally:
      self.left_out += self.clock() - start

  def read(self, flops_per_step: float | None = None) -> dict:
    """{'steps_per_second', 'step_time_ms', 'images_per_second' (when images_per_step > 0),
    'tflops_per_second' (when the FLOPs are known)} since the previous read."""
    now = self.clock()
    seconds, steps = max(now - self.since - self.left_out, 1e-9), self.steps
    self.since, self.steps, self.left_out = now, 0, 0.0
    figures = {'steps_per_second': steps / seconds, 'step_time_ms': 1e3 * seconds / steps}
    if self.images_per_step:
      figures['images_per_second'] = self.images_per_step * steps / seconds
    if flops_per_step:
      figures['tflops_per_second'] = flops_per_step * steps / seconds / 1e12
    return figures
