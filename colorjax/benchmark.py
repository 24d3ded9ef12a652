"""Times jitted training steps (lax.scan over `steps` iterations, best of `repeats`) and writes
report.md. The first call compiles and is not timed."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color, data, losses, report, train
from colorjax.errors import UsageError
from colorjax.models.tiny_cnn import TinyCNN


def _size(text):
  try:
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w
  except ValueError:
    raise UsageError(f"size '{text}' is not HxW (e.g. 400x600) in --config.sizes") from None


def time_scanned_steps(train_step, state, batch, steps, repeats):
  """Best wall time per iteration of `steps` iterations of train_step under one lax.scan."""
  run = jax.jit(lambda s: jax.lax.scan(lambda s, _: train_step(s, batch), s, None, length=steps))
  jax.block_until_ready(run(state))
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(run(state))
    best = min(best, time.perf_counter() - start)
  return best / steps


def _tiny_cnn_ms(image, taps, config):
  model = TinyCNN(channels=config.channels, taps=taps)
  tx = train.make_optimizer({'name': 'adam', 'learning_rate': 1e-3})
  batch = {'rgb': jnp.asarray(image[None])}
  state = train.init_state(model, tx, jax.random.PRNGKey(0),
                           jnp.zeros((1, *image.shape[:2], 1), jnp.float32))
  step = train.make_train_step(losses.ab_regression(model, color.NORMALIZATIONS['unit']), tx)
  return 1e3 * time_scanned_steps(step, state, batch, config.steps, config.repeats)


def main(config, workdir):
  unknown = set(config.formulations) - {'taps', 'xla'}
  if unknown:
    raise UsageError(f"unknown formulation(s) {', '.join(sorted(unknown))}: choose taps or xla")
  photo = data.load_image(config.image)
  rows = []
  for size in config.sizes:
    h, w = _size(size)
    image = data.resize_rgb(photo, (h, w))
    for formulation in config.formulations:
      ms = _tiny_cnn_ms(image, formulation == 'taps', config)
      print(f'tiny CNN train step, {formulation:4s} {h}x{w}: {ms:.1f} ms/iteration', flush=True)
      rows.append([f'tiny CNN (c={config.channels}) train step', f'{h}x{w}', formulation,
                   f'{ms:.1f}'])
  device = jax.devices()[0]
  path = report.write_report(workdir, 'Benchmark', [
      f'Backend `{jax.default_backend()}` ({device.device_kind}), {jax.device_count()} '
      f'device(s). Each figure is the best of {config.repeats} timings of {config.steps} '
      'iterations under one jitted lax.scan (MSE on ab, Adam), compile excluded.',
      report.markdown_table(['what', 'size', 'formulation', 'ms/iteration'], rows)])
  print(f'report: {path}')
