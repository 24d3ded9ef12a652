"""A jax.profiler trace of the calls that run steps FIRST..LAST (a loop's profile_steps)
into <workdir>/profile, which TensorBoard's profile plugin and Perfetto read."""

import pathlib

import jax


class Trace:

  def __init__(self, folder: pathlib.Path, profile_steps):
    self.folder, self.steps, self.on = folder, tuple(profile_steps), False

  def before(self, step: int, end: int):
    """Called before the call that runs steps [step, end)."""
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
