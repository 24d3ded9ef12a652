"""The benchmark program: times the tiny CNN's step per conv formulation (lax.scan over
`steps` iterations, best of `repeats`; the first call compiles and is not timed), every
family's training step against PyTorch's (family_steps.py, torch_reference.py), sRGB -> Lab
against scikit-image, and the input pipeline alone (images/s, images per CPU-second against
a tf.data reference, resume cost), and writes report.md. Experiment: benchmark."""

import io
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
import skimage.color

from colorjax import color, configs, optional, precision, xla_cpu
from colorjax.benchmark import family_steps
from colorjax.benchmark.timing import warm_best_seconds
from colorjax.data import images, pipeline, sources
from colorjax.errors import UsageError
from colorjax.eval import report
from colorjax.models.tiny_cnn import TinyCNN
from colorjax.programs import zhang
from colorjax.train import losses, metrics_log, optim, throughput, train_state


def _size(text):
  try:
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w
  except ValueError:
    raise UsageError(f"size '{text}' is not HxW (e.g. 400x600) in --config.sizes") from None


def time_scanned_steps(train_step, state, batch, steps, repeats):
  """Best wall time per iteration of `steps` iterations of train_step under one lax.scan."""
  run = xla_cpu.jit(lambda s: jax.lax.scan(lambda s, _: train_step(s, batch), s, None,
                                           length=steps))
  return warm_best_seconds(lambda: jax.block_until_ready(run(state)), repeats) / steps


def _tiny_cnn_ms(image, taps, config):
  model = TinyCNN(channels=config.channels, taps=taps)
  tx = optim.make_optimizer({'name': 'adam', 'learning_rate': 1e-3})
  batch = {'rgb': jnp.asarray(image[None])}
  fresh = train_state.init_state(model, tx, jax.random.PRNGKey(0),
                           jnp.zeros((1, *image.shape[:2], 1), jnp.float32))
  step = train_state.make_train_step(losses.ab_regression(model, color.NORMALIZATIONS['unit']), tx)
  return 1e3 * time_scanned_steps(step, fresh, batch, config.steps, config.repeats)


def compute_cells(images_per_second, batch_size, flops, peak) -> list[str]:
  """[achieved TFLOP/s, MFU] of a step: '-' where XLA gives no FLOPs or the peak is
  unknown (CPU). MFU is against the peak of every device together."""
  if flops is None:
    return ['-', '-']
  achieved = flops * images_per_second / batch_size / 1e12
  mfu = f'{100 * achieved / (peak * jax.device_count()):.1f}%' if peak else '-'
  return [f'{achieved:.3g}', mfu]


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
    return sources.in_memory_source(crops, [0] * len(crops), config)
  return sources.encoded_source([_encode(c, record_format) for c in crops], [0] * len(crops))


def _encode(rgb, record_format):
  buffer = io.BytesIO()
  PIL.Image.fromarray(rgb).save(buffer, format=record_format)
  return buffer.getvalue()


def pipeline_images_per_second(source, crop, batch_size, batches):
  """Images/s (wall) of colorjax's training batches."""
  config = configs.data_config(crop=crop, batch_size=batch_size)
  return _rates(pipeline.train_batches(source, config, process_count=1), batch_size, batches)[0]


def _rates(iterator, batch_size, batches):
  """(images per wall second, images per CPU second of the whole process, its decode threads
  included) over `batches` batches after 5 warm-up batches."""
  for _ in range(5):
    next(iterator)
  wall, cpu = time.perf_counter(), time.process_time()
  for _ in range(batches):
    next(iterator)
  wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  return batches * batch_size / wall, batches * batch_size / cpu


def _import_tensorflow():
  """tensorflow, or None where it is not installed (one line says so)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  return optional.load('tensorflow', 'no tf.data column in the pipeline tables',
                       'tensorflow-cpu')


def _tf_batches(tf, encoded, crop, batch_size, seed=0):
  """Minimal tf.data reference: decode_image, resize of the short side to the crop where
  smaller (antialias), stateless random crop and flip, map(AUTOTUNE), batch, prefetch."""
  def example(index, record):
    image = tf.io.decode_image(record, channels=3, expand_animations=False)
    shape = tf.shape(image)
    scale = crop / tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
    size = tf.maximum(crop, tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale),
                                    tf.int32))
    image = tf.cond(scale > 1, lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
        image, size, antialias=True)), 0, 255), tf.uint8), lambda: image)
    seeds = tf.random.experimental.stateless_split(tf.stack([seed, index]), 2)
    image = tf.image.stateless_random_crop(image, (crop, crop, 3), seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(image, seed=seeds[1])

  records = tf.data.Dataset.from_tensor_slices(encoded).repeat().enumerate()
  dataset = records.map(example, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def _per_core_row(tf, crops, crop, record_format, config):
  """[source, crop, records, colorjax images/CPU-s, tf.data images/CPU-s, ratio]."""
  encoded = [_encode(c, record_format) for c in crops]
  source = sources.encoded_source(encoded, [0] * len(encoded))
  batch_config = configs.data_config(crop=crop, batch_size=config.pipeline_batch_size)
  args = config.pipeline_batch_size, config.pipeline_batches
  ours = _rates(pipeline.train_batches(source, batch_config, process_count=1), *args)[1]
  theirs = _rates(_tf_batches(tf, encoded, crop, args[0]), *args)[1] if tf else None
  size = crops[0].shape[0]
  return [f'{size}x{size}', f'{crop}x{crop}', record_format, f'{ours:,.0f}',
          f'{theirs:,.0f}' if tf else '-', f'{ours / theirs:.2f}' if tf else '-']


def resume_seconds(source, config, start_step):
  """Seconds from train_batches(..., start_step) to its first batch."""
  start = time.perf_counter()
  iterator = pipeline.train_batches(source, config, start_step=start_step, process_count=1)
  next(iterator)
  seconds = time.perf_counter() - start
  iterator.close()
  return seconds


def _per_core_and_resume(config):
  """Rows of the per-core decode table and of the resume table, and tensorflow (or None)."""
  tf = _import_tensorflow() if config.pipeline_tf else None
  per_core_rows = []
  if not config.pipeline_cases:
    return [], [], tf
  for case in config.pipeline_cases:
    source_size, crop = _size(case.replace(':', 'x'))
    crops = _pipeline_images(config.pipeline_examples, source_size)
    for record_format in ('jpeg', 'png'):
      per_core_rows.append(_per_core_row(tf, crops, crop, record_format, config))
      print('per core: ' + ' | '.join(per_core_rows[-1]), flush=True)
  source = _pipeline_source(crops, 'jpeg')
  batch_config = configs.data_config(crop=crop, batch_size=config.pipeline_batch_size)
  seconds = [resume_seconds(source, batch_config, step) for step in (0, config.resume_step)]
  resume_rows = [[f'{step:,}', f'{s:.3f}', f'{s / seconds[0]:.2f}']
                 for step, s in zip((0, config.resume_step), seconds)]
  print(f'resume: {seconds[0]:.3f} s at step 0, {seconds[1]:.3f} s at step '
        f'{config.resume_step:,}', flush=True)
  return per_core_rows, resume_rows, tf


MFU_NOTE = ('TFLOP/s: XLA\'s cost analysis of the step (its FLOPs) x steps/s; MFU: that over '
            'the peak ({peak}; --config.peak_tflops sets it, else the dense bf16 peak of a '
            'known device: throughput.PEAK_TFLOPS), all devices together.')


def _family_cases(config):
  """[(family, batch size)] of --config.families ('unet:16', ...); checks the sizes too."""
  bad_sizes = [size for size in config.family_sizes if size < 16 or size % 16]
  if bad_sizes:
    raise UsageError(f'--config.family_sizes={",".join(map(str, config.family_sizes))}: each '
                     'side must be a multiple of 16 (the GAN and the PyTorch U-Net need it)')
  cases = []
  for entry in config.families:
    family, _, batch = entry.partition(':')
    if family not in family_steps.FAMILIES or not batch.isdigit() or int(batch) < 1:
      raise UsageError(f"--config.families entry '{entry}' is not FAMILY:BATCH with FAMILY one "
                       f"of {', '.join(family_steps.FAMILIES)} (e.g. unet:16)")
    cases.append((family, int(batch)))
  return cases


def _torch_reference():
  """benchmark.torch_reference, or None where torch is not installed (one line says so)."""
  if optional.load('torch', 'no PyTorch column in the family table', 'torch') is None:
    return None
  from colorjax.benchmark import torch_reference  # imports torch
  return torch_reference


def family_rows(config, peak):
  """One row per family, size and compute dtype: colorjax's init, compile and images/s,
  TFLOP/s and MFU, and PyTorch's images/s and MFU (the same FLOPs) on the same batch,
  measured right after, with the ratio; and the device PyTorch ran on (None: no torch)."""
  torch_reference = _torch_reference() if config.torch else None
  rows = []
  for size in config.family_sizes:
    for family, batch_size in _family_cases(config):
      rgb = np.stack(_pipeline_images(batch_size, size))
      for dtype in config.compute_dtypes:
        ours = family_steps.time_family(family_steps.family_step(family, size, batch_size, dtype),
                                        {'rgb': jnp.asarray(rgb)}, config.family_steps,
                                        config.repeats)
        theirs = (torch_reference.time_train_step(
            family, rgb, config.family_steps, config.repeats, dtype, config.torch_compile)
            if torch_reference else None)
        rate = ours.images_per_second
        cells = [f'{rate:.1f}', *compute_cells(rate, batch_size, ours.flops, peak)]
        if theirs:
          torch_rate = theirs['images_per_second']
          cells += [f'{torch_rate:.1f}', compute_cells(torch_rate, batch_size, ours.flops,
                                                       peak)[1], f'{rate / torch_rate:.2f}x']
        else:
          cells += ['-', '-', '-']
        rows.append([family, f'{size}x{size}', batch_size, dtype, f'{ours.init_s:.1f}',
                     f'{ours.compile_s:.1f}', *cells])
        print('family step: ' + ' | '.join(map(str, rows[-1])), flush=True)
  return rows, torch_reference and str(torch_reference.device())


FAMILY_HEADER = ['family', 'size', 'batch', 'dtype', 'init s', 'compile s', 'images/s',
                 'TFLOP/s', 'MFU', 'PyTorch images/s', 'PyTorch MFU', 'colorjax / PyTorch']


def _loop_config(config):
  """The zhang_softmax experiment at full width, trained on loop_source for loop_steps at the
  benchmark's zhang_softmax batch and first family size; evaluated on one batch."""
  batch_size = dict(_family_cases(config)).get('zhang_softmax')
  if batch_size is None:
    raise UsageError('--config.loop_steps needs a zhang_softmax:BATCH entry in '
                     '--config.families (the step the loop is read against)')
  loop = configs.load_config('zhang_softmax')
  loop.data.update(source=config.loop_source, crop=config.family_sizes[0],
                   train_short_side=config.family_sizes[0], batch_size=batch_size,
                   eval_batch_size=batch_size)
  loop.update(num_steps=config.loop_steps, log_every=max(config.loop_steps // 10, 1),
              checkpoint_every=config.loop_steps, eval_batches=1, report_images=2,
              prior_batches=10, temperatures=(0.38,), compute_dtype=config.compute_dtypes[-1])
  loop.optimizer.update(schedule='constant', drops=())
  return loop


def loop_row(config, workdir, families):
  """[steps, dtype, loop images/s, step images/s, ratio]: run.py's loop (programs/zhang.py,
  its input pipeline, logging and checkpoints) against its step alone (the family row). The
  loop's figure is the median of its logged windows after the first (which compiles)."""
  loop = _loop_config(config)
  zhang.main(loop, workdir / 'zhang_loop')
  rates = [m['images_per_second'] for m in metrics_log.read_metrics(workdir / 'zhang_loop')
           if 'images_per_second' in m][1:]
  step_rate = next(float(row[6]) for row in families if row[0] == 'zhang_softmax'
                   and row[3] == loop.compute_dtype)
  rate = float(np.median(rates)) if rates else float('nan')
  return [f'{config.loop_steps:,}', loop.compute_dtype, f'{rate:.1f}', f'{step_rate:.1f}',
          f'{rate / step_rate:.2f}']


def lab_row(config):
  """[shape, colorjax ms, skimage uint8 ms, ratio, skimage float32 ms, ratio]: uint8 RGB ->
  Lab, jitted color.lab_from_uint8 (best of 10) against skimage.color.rgb2lab (best of 3)."""
  count, side = config.lab_batch, config.lab_side
  rgb = np.stack(_pipeline_images(count, side))
  convert = jax.jit(color.lab_from_uint8)
  ours = 1e3 * warm_best_seconds(lambda: jax.block_until_ready(convert(rgb)), 10)
  uint8 = 1e3 * warm_best_seconds(lambda: skimage.color.rgb2lab(rgb), 3)
  float32 = 1e3 * warm_best_seconds(
      lambda: skimage.color.rgb2lab(rgb.astype(np.float32) / 255), 3)
  return [f'{count}x{side}x{side}', f'{ours:.1f}', f'{uint8:.0f}', f'{uint8 / ours:.1f}x',
          f'{float32:.0f}', f'{float32 / ours:.1f}x']


def check(config):
  for dtype in config.compute_dtypes:
    precision.compute_dtype({'compute_dtype': dtype})
  _family_cases(config)
  if config.loop_steps:
    zhang.check(_loop_config(config))
  unknown = set(config.formulations) - {'taps', 'nhwc'}
  if unknown:
    raise UsageError(f"unknown formulation(s) {', '.join(sorted(unknown))}: choose taps or nhwc")


def main(config, workdir):
  check(config)
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
  device = jax.devices()[0]
  peak = throughput.peak_tflops(device.device_kind, config.peak_tflops)
  families, torch_device = family_rows(config, peak)
  loop = [loop_row(config, workdir, families)] if config.loop_steps else []
  lab = [lab_row(config)] if config.lab_batch else []
  if lab:
    print('rgb -> Lab: ' + ' | '.join(lab[0]), flush=True)
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
  per_core_rows, resume_rows, tf = _per_core_and_resume(config)
  path = report.write_report(workdir, 'Benchmark', [
      f'Backend `{jax.default_backend()}` ({device.device_kind}), {jax.device_count()} '
      f'device(s). Each figure is the best of {config.repeats} timings of {config.steps} '
      'iterations under one jitted lax.scan (MSE on ab, Adam), compile excluded.',
      report.markdown_table(['what', 'size', 'formulation', 'ms/iteration'], rows),
      'taps: NCHW sum of shifted planes (layers.conv3x3_taps); nhwc: XLA\'s convolution '
      '(layers.Conv3x3 channels-last).',
      '## Training step of each family',
      f'The step each program trains with, in each compute dtype: `unet` the unet_portrait '
      'gray -> RGB step (MAE, Adam), `gan` the yuv_gan default (one critic and one generator '
      'update; BCE, Adam), `zhang_softmax` / `zhang_regression` the full-width Zhang et al. '
      'network with its rebalanced soft cross-entropy / ab MSE (AdamW). init: the fresh state '
      '(one compiled function); compile: the step\'s XLA compilation; images/s: the best of '
      f'{config.repeats} windows of {config.family_steps} steps after a warm-up step. PyTorch: '
      'the same networks, loss and optimizer in PyTorch (benchmark/torch_reference.py; '
      'the same parameter counts; channels_last; bfloat16: autocast), '
      f'{"through torch.compile" if config.torch_compile else "eager"}, on '
      f'{torch_device or "-"}, timed the same way on the same batch right after.' + (
          '' if torch_device else ' **torch does not import here (or --config.torch=False): no '
          'PyTorch column.**') + ' ' + MFU_NOTE.format(
          peak=f'{peak:g} TFLOP/s per device' if peak else 'unknown for this device: no MFU'),
      report.markdown_table(FAMILY_HEADER, families),
      *(['## Training loop against the step', f'`run.py`\'s own loop (programs/zhang.py: '
         f'input pipeline from `{config.loop_source}`, logging, checkpoints) training the '
         'full-width Zhang et al. network (softmax head) at the zhang_softmax row\'s batch and '
         'size: the median of its logged images/s after the first window, against the step '
         'alone (the family table).',
         report.markdown_table(['steps', 'dtype', 'loop images/s', 'step images/s',
                                'loop / step'], loop)] if loop else []),
      '## sRGB -> Lab',
      'uint8 RGB to Lab: jitted `color.lab_from_uint8` (best of 10) against scikit-image\'s '
      '`rgb2lab` on the uint8 batch and on it as float32 (best of 3), the same crops.',
      report.markdown_table(['batch', 'colorjax ms', 'skimage uint8 ms', 'ratio',
                             'skimage float32 ms', 'ratio'], lab),
      '## Input pipeline',
      f'Training batches of {config.pipeline_batch_size} (shuffle, random crop, flip, batch) '
      f'from {config.pipeline_examples} distinct images, records held as decoded arrays or '
      f'as PNG / JPEG bytes (as tfds stores them) decoded in the pipeline; '
      f'{config.pipeline_batches} batches timed after 5 warm-up batches.',
      report.markdown_table(['source', 'crop', 'records', 'images/s'], pipeline_rows),
      '### Decode throughput per core',
      'Images per CPU-second of the whole process (process_time, decode threads included), '
      'same records and batches as above: colorjax (simplejpeg for JPEG, Pillow for PNG; '
      'thread pool) against a minimal '
      'tf.data reference (decode_image, antialiased resize where the short side is under the '
      'crop, stateless random crop and flip, map(num_parallel_calls=AUTOTUNE), batch, '
      'prefetch; no shuffle).' + ('' if tf else ' **TensorFlow does not import here: no '
                                  'tf.data column.**'),
      report.markdown_table(['source', 'crop', 'records', 'colorjax', 'tf.data',
                             'colorjax / tf.data'], per_core_rows),
      '### Resume cost',
      'Seconds from `pipeline.train_batches(source, config, start_step)` to its first batch '
      f'({config.pipeline_batch_size} JPEG crops of the last case above).',
      report.markdown_table(['start_step', 'seconds to first batch', 'ratio to step 0'],
                            resume_rows)])
  print(f'report: {path}')
