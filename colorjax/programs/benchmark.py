"""Times jitted training steps (lax.scan over `steps` iterations, best of `repeats`; the
first call compiles and is not timed) and the input pipeline alone, and writes report.md.
Experiment: benchmark."""

import io
import time

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image

from colorjax import color, configs, data, images, losses, quantize, report, train
from colorjax.errors import UsageError
from colorjax.programs import yuv_gan
from colorjax.models.tiny_cnn import TinyCNN
from colorjax.models.zhang import ZhangNet


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


def _zhang_images_per_second(size, config):
  """Training step of the softmax Zhang network, one jitted step per batch as fit() runs it.
  (A lax.scan over this 32M-parameter step did not finish the 64x64 case in 10 minutes on
  XLA:CPU, where separate steps take 2 s each.)"""
  bins = quantize.gamut_bins()
  model = ZhangNet(len(bins), config.zhang_width)
  tx = train.make_optimizer({'name': 'adamw', 'learning_rate': 3e-5, 'b1': 0.9, 'b2': 0.99,
                             'weight_decay': 1e-3})
  crops = _pipeline_images(config.zhang_batch_size, max(size))
  batch = {'rgb': jnp.asarray(np.stack(crops)[:, :size[0], :size[1]])}
  state = train.init_state(model, tx, jax.random.PRNGKey(0), jnp.zeros((1, *size, 1)))
  loss = losses.rebalanced_soft_cross_entropy(model, bins, np.ones(len(bins)))
  return jitted_images_per_second(train.make_train_step(loss, tx), state, batch,
                                  config.zhang_steps)


def jitted_images_per_second(train_step, state, batch, steps):
  """Images/s of `steps` separately jitted steps dispatched back to back, as fit() runs
  them, after one compiling step."""
  step = jax.jit(train_step, donate_argnums=0)
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  return steps * batch['rgb'].shape[0] / (time.perf_counter() - start)


def _gan_images_per_second(config):
  """One GAN step (critic and generator updates) of the yuv_gan experiment's default config
  at `gan_size`, batch `gan_batch_size`."""
  gan_config = configs.load_config('yuv_gan')
  size = gan_config.data.crop = config.gan_size
  gan_config.data.batch_size = config.gan_batch_size
  crops = _pipeline_images(config.gan_batch_size, size)
  return jitted_images_per_second(yuv_gan.make_train_step(gan_config),
                                  yuv_gan.init_state(gan_config),
                                  {'rgb': jnp.asarray(np.stack(crops))}, config.gan_steps)


def _pipeline_images(count, size, seed=0):
  """`count` size x size RGB crops of the bundled photos: photo-like content, so encoded
  sizes and decode times are realistic."""
  rng = np.random.default_rng(seed)
  photos = [images.sample_photo(name) for name in images.SAMPLE_PHOTOS]
  crops = []
  for i in range(count):
    photo = photos[i % len(photos)]
    y, x = (rng.integers(0, d - size + 1) for d in photo.shape[:2])
    crops.append(photo[y:y + size, x:x + size])
  return crops


def _pipeline_source(crops, record_format):
  config = configs.data_config()
  if record_format == 'array':
    return data.in_memory_source(crops, [0] * len(crops), config)
  return data.encoded_source([_encode(c, record_format) for c in crops], [0] * len(crops))


def _encode(rgb, record_format):
  buffer = io.BytesIO()
  PIL.Image.fromarray(rgb).save(buffer, format=record_format)
  return buffer.getvalue()


def pipeline_images_per_second(source, crop, batch_size, batches):
  config = configs.data_config(crop=crop, batch_size=batch_size)
  iterator = data.train_batches(source, config, process_count=1)
  for _ in range(5):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - start)


def main(config, workdir):
  unknown = set(config.formulations) - {'taps', 'nhwc'}
  if unknown:
    raise UsageError(f"unknown formulation(s) {', '.join(sorted(unknown))}: choose taps or nhwc")
  photo = images.load_image(config.image)
  rows = []
  for size in config.sizes:
    h, w = _size(size)
    image = images.resize_rgb(photo, (h, w))
    for formulation in config.formulations:
      ms = _tiny_cnn_ms(image, formulation == 'taps', config)
      print(f'tiny CNN train step, {formulation:4s} {h}x{w}: {ms:.1f} ms/iteration', flush=True)
      rows.append([f'tiny CNN (c={config.channels}) train step', f'{h}x{w}', formulation,
                   f'{ms:.1f}'])
  zhang_rows = []
  for size in config.zhang_sizes:
    h, w = _size(size)
    rate = _zhang_images_per_second((h, w), config)
    print(f'Zhang et al. train step (width {config.zhang_width}), {h}x{w}: {rate:.2f} images/s',
          flush=True)
    zhang_rows.append([f'{h}x{w}', config.zhang_batch_size, f'{rate:.2f}',
                       f'{1e3 * config.zhang_batch_size / rate:.0f}'])
  gan_rows = []
  if config.gan_size:
    rate = _gan_images_per_second(config)
    print(f'YUV GAN train step, {config.gan_size}x{config.gan_size}: {rate:.1f} images/s',
          flush=True)
    gan_rows.append([f'{config.gan_size}x{config.gan_size}', config.gan_batch_size,
                     f'{rate:.1f}', f'{1e3 * config.gan_batch_size / rate:.0f}'])
  pipeline_rows = []
  for case in config.pipeline_cases:
    source_size, crop = _size(case.replace(':', 'x'))
    crops = _pipeline_images(config.pipeline_examples, source_size)
    for record_format in config.pipeline_formats:
      rate = pipeline_images_per_second(_pipeline_source(crops, record_format), crop,
                                        config.pipeline_batch_size, config.pipeline_batches)
      print(f'pipeline {source_size}x{source_size} -> {crop}x{crop} crops, {record_format}: '
            f'{rate:,.0f} images/s', flush=True)
      pipeline_rows.append([f'{source_size}x{source_size}', f'{crop}x{crop}', record_format,
                            f'{rate:,.0f}'])
  device = jax.devices()[0]
  path = report.write_report(workdir, 'Benchmark', [
      f'Backend `{jax.default_backend()}` ({device.device_kind}), {jax.device_count()} '
      f'device(s). Each figure is the best of {config.repeats} timings of {config.steps} '
      'iterations under one jitted lax.scan (MSE on ab, Adam), compile excluded.',
      report.markdown_table(['what', 'size', 'formulation', 'ms/iteration'], rows),
      'taps: NCHW sum of shifted planes (layers.conv3x3_taps); nhwc: lax.conv, with the '
      'kernel gradient as one matmul per tap on CPU (layers.conv3x3_nhwc).',
      f'## Zhang et al. network (width {config.zhang_width}, softmax head, AdamW)',
      f'{config.zhang_steps} jitted training steps after one compiling step.',
      report.markdown_table(['size', 'batch', 'images/s', 'ms/step'], zhang_rows),
      '## YUV conditional GAN',
      f'One step = one critic and one generator update (the `yuv_gan` default: BCE, Adam); '
      f'{config.gan_steps} jitted steps after one compiling step.',
      report.markdown_table(['size', 'batch', 'images/s', 'ms/step'], gan_rows),
      '## Input pipeline',
      f'Training batches of {config.pipeline_batch_size} (shuffle, random crop, flip, batch) '
      f'from {config.pipeline_examples} distinct images, records held as decoded arrays or '
      f'as PNG / JPEG bytes (as tfds stores them) decoded in the pipeline; '
      f'{config.pipeline_batches} batches timed after 5 warm-up batches.',
      report.markdown_table(['source', 'crop', 'records', 'images/s'], pipeline_rows)])
  print(f'report: {path}')
