"""The benchmark program: times the tiny CNN's step per conv formulation (lax.scan over
`steps` iterations, best of `repeats`; the first call compiles and is not timed), every
family's training step against PyTorch's (family_steps.py, torch_reference.py), sRGB -> Lab
against scikit-image, the input pipeline alone (images/s, images per CPU-second against a
tf.data reference, resume cost) and run.py's training loop against its step; writes
report.md and prints its summary table. Experiment: benchmark."""

import io
import os
import sys
import time
from typing import NamedTuple

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


def _pipeline_cases(config):
  """The input pipeline's cases: none with 0 pipeline_examples."""
  return config.pipeline_cases if config.pipeline_examples else ()


def _per_core_and_resume(config):
  """Rows of the per-core decode table and of the resume table, and tensorflow (or None)."""
  if not _pipeline_cases(config):
    return [], [], None
  tf = _import_tensorflow() if config.pipeline_tf else None  # only then: none on a GPU machine
  per_core_rows = []
  for case in _pipeline_cases(config):
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
  """[(family, batch size, side)] of --config.families: FAMILY:BATCH at each of
  --config.family_sizes, FAMILY:BATCH:SIDE at its own side (the write-ups' crops differ);
  checks the sides too."""
  cases = []
  for entry in config.families:
    family, *numbers = entry.split(':')
    if (family not in family_steps.FAMILIES or len(numbers) not in (1, 2)
        or not all(n.isdigit() and int(n) > 0 for n in numbers)):
      raise UsageError(f"--config.families entry '{entry}' is not FAMILY:BATCH[:SIDE] with "
                       f"FAMILY one of {', '.join(family_steps.FAMILIES)} (e.g. unet:16, "
                       'flowers_resnet:32:224)')
    batch, *side = map(int, numbers)
    multiple = family_steps.side_multiple(family)
    for size in side or config.family_sizes:
      if size < multiple or size % multiple:
        raise UsageError(f'{family} at {size}x{size} (--config.families, --config.family_sizes)'
                         f': its side must be a multiple of {multiple}')
      cases.append((family, batch, size))
  return cases


def _torch_reference():
  """benchmark.torch_reference, or None where torch is not installed (one line says so)."""
  if optional.load('torch', 'no PyTorch column in the family table', 'torch') is None:
    return None
  from colorjax.benchmark import torch_reference  # imports torch
  return torch_reference


class FamilyRow(NamedTuple):
  """One family step at one side, batch and compute dtype: colorjax's timing and PyTorch's
  (time_train_step's dict; the cell saying it failed; None: no PyTorch column)."""
  family: str
  side: int
  batch: int
  dtype: str
  ours: family_steps.StepTiming
  theirs: dict | str | None

  def mfu(self, images_per_second, peak) -> str:
    """The MFU cell of a rate of this step (the same FLOPs, whoever runs it)."""
    return compute_cells(images_per_second, self.batch, self.ours.flops, peak)[1]


def _torch_timing(torch_reference, family, rgb, dtype, config):
  """time_train_step's dict, or the cell saying that PyTorch failed (torch.compile's
  compiler, memory): one row's PyTorch figures are lost, not the run; stderr has the error."""
  try:
    return torch_reference.time_train_step(family, rgb, config.family_steps, config.repeats,
                                           dtype, config.torch_compile)
  except Exception as error:
    print(f'PyTorch {family} {dtype} failed: {error!r}', file=sys.stderr, flush=True)
    return f'failed ({type(error).__name__})'


def family_rows(config, peak):
  """A FamilyRow per case and compute dtype, PyTorch timed on the same batch right after
  colorjax; and the device PyTorch ran on (None: no torch)."""
  torch_reference = _torch_reference() if config.torch else None
  rows = []
  for family, batch_size, size in _family_cases(config):
    rgb = np.stack(_pipeline_images(batch_size, size))
    for dtype in config.compute_dtypes:
      ours = family_steps.time_family(family_steps.family_step(family, size, batch_size, dtype),
                                      {'rgb': jnp.asarray(rgb)}, config.family_steps,
                                      config.repeats)
      theirs = (_torch_timing(torch_reference, family, rgb, dtype, config)
                if torch_reference else None)
      rows.append(FamilyRow(family, size, batch_size, dtype, ours, theirs))
      print('family step: ' + ' | '.join(map(str, family_cells(rows[-1], peak))), flush=True)
  return rows, torch_reference and str(torch_reference.device())


def family_cells(row: FamilyRow, peak) -> list:
  """The family table's cells (FAMILY_HEADER) of one row."""
  rate = row.ours.images_per_second
  cells = [row.family, f'{row.side}x{row.side}', row.batch, row.dtype, f'{row.ours.init_s:.1f}',
           f'{row.ours.compile_s:.1f}', f'{rate:.1f}',
           *compute_cells(rate, row.batch, row.ours.flops, peak)]
  if not isinstance(row.theirs, dict):
    return cells + [row.theirs or '-', '-', '-', '-']
  torch_rate = row.theirs['images_per_second']
  return cells + [f'{torch_rate:.1f}', row.mfu(torch_rate, peak), f'{rate / torch_rate:.2f}x',
                  f"{row.theirs['first_step_s']:.1f}"]


FAMILY_HEADER = ['family', 'size', 'batch', 'dtype', 'init s', 'compile s', 'images/s',
                 'TFLOP/s', 'MFU', 'PyTorch images/s', 'PyTorch MFU', 'colorjax / PyTorch',
                 'PyTorch first step s']

LOOP_MIN_STEPS = 4      # the loop's figure is the median of its logged windows after the first
LOOP_OVERHEAD_S = 30.0  # its source check, prior, evaluation, checkpoint, report (a guess)


def _loop_config(config, num_steps):
  """The zhang_softmax experiment at full width, trained on loop_source for num_steps at the
  batch and side of the benchmark's first zhang_softmax case; evaluated on one batch."""
  batch_size, side = next(((batch, side) for family, batch, side in _family_cases(config)
                           if family == 'zhang_softmax'), (None, None))
  if batch_size is None:
    raise UsageError('--config.loop_seconds needs a zhang_softmax:BATCH entry in '
                     '--config.families (the step the loop is read against)')
  loop = configs.load_config('zhang_softmax')
  loop.data.update(source=config.loop_source, crop=side, train_short_side=side,
                   batch_size=batch_size, eval_batch_size=batch_size)
  loop.update(num_steps=num_steps, log_every=max(num_steps // 10, 1),
              checkpoint_every=num_steps, eval_batches=1, report_images=2, prior_batches=10,
              temperatures=(0.38,), compute_dtype=config.compute_dtypes[-1])
  loop.optimizer.update(schedule='constant', drops=())
  return loop


def loop_seconds(config, step: FamilyRow, started: float) -> float:
  """loop_seconds, or less where the run would pass time_limit_s (counted from `started`,
  a perf_counter reading): besides training, the loop compiles its step (as long as the
  family row took) and spends LOOP_OVERHEAD_S on the rest."""
  if not config.time_limit_s:
    return config.loop_seconds
  left = (config.time_limit_s - (time.perf_counter() - started) - step.ours.init_s
          - step.ours.compile_s - LOOP_OVERHEAD_S)
  return max(min(config.loop_seconds, left), 0.0)


class LoopResult(NamedTuple):
  step: FamilyRow                    # the zhang_softmax row it is read against
  steps: int
  seconds: float                     # the whole loop: prior, compile and evaluation too
  images_per_second: float           # median of its logged windows after the first
  pipeline_images_per_second: float  # its input pipeline alone (host batches)


def run_loop(config, workdir, families, started) -> LoopResult:
  """run.py's loop (programs/zhang.py: input pipeline, logging, checkpoints) for about
  loop_seconds() of training, counted in steps at the slower of its step alone (the family
  row) and its input pipeline alone, measured first: as long on any device."""
  loop = _loop_config(config, LOOP_MIN_STEPS)
  data = loop.data
  step = next(row for row in families if (row.family, row.batch, row.side, row.dtype) == (
      'zhang_softmax', data.batch_size, data.crop, loop.compute_dtype))
  batches = pipeline.train_batches(sources.load_source(data, 'train'), data, process_count=1)
  pipeline_rate = _rates(batches, data.batch_size, config.pipeline_batches)[0]
  batches.close()
  seconds = loop_seconds(config, step, started)
  if seconds < config.loop_seconds:
    print(f'training loop: {seconds:.0f} s, not {config.loop_seconds:g}, to end within '
          f'--config.time_limit_s={config.time_limit_s:g}', file=sys.stderr, flush=True)
  rate = min(step.ours.images_per_second, pipeline_rate)
  loop = _loop_config(config, max(LOOP_MIN_STEPS, round(seconds * rate / data.batch_size)))
  start = time.perf_counter()
  zhang.main(loop, workdir / 'zhang_loop')
  seconds = time.perf_counter() - start
  rates = [m['images_per_second'] for m in metrics_log.read_metrics(workdir / 'zhang_loop')
           if 'images_per_second' in m][1:]
  return LoopResult(step, loop.num_steps, seconds, float(np.median(rates)), pipeline_rate)


def loop_cells(loop: LoopResult) -> list[str]:
  """The loop table's cells (LOOP_HEADER)."""
  step_rate = loop.step.ours.images_per_second
  return [f'{loop.steps:,}', f'{loop.seconds:.0f}', loop.step.dtype,
          f'{loop.images_per_second:.1f}', f'{step_rate:.1f}',
          f'{loop.images_per_second / step_rate:.2f}', f'{loop.pipeline_images_per_second:.1f}',
          f'{loop.pipeline_images_per_second / step_rate:.2f}']


LOOP_HEADER = ['steps', 'seconds', 'dtype', 'loop images/s', 'step images/s', 'loop / step',
               'pipeline images/s', 'pipeline / step']


def summary_rows(families, loop: LoopResult | None, peak, torch_compile) -> list[list]:
  """The table printed at the end, from the family and loop tables' cells: colorjax's and
  PyTorch's row of each family step; then the loop's and its input pipeline's, each against
  the step alone."""
  rows = []
  framework = f'PyTorch ({"torch.compile" if torch_compile else "eager"})'
  for row in families:
    family, size, batch, dtype, _, _, rate, _, mfu, torch_rate, torch_mfu, ratio, _ = (
        family_cells(row, peak))
    rows.append([family, 'colorjax', dtype, batch, size, rate, mfu, '-'])
    if row.theirs is not None:
      note = f'colorjax {ratio}' if isinstance(row.theirs, dict) else '-'
      rows.append([family, framework, dtype, batch, size, torch_rate, torch_mfu, note])
  if loop:
    steps, seconds, dtype, rate, _, ratio, pipeline_rate, pipeline_ratio = loop_cells(loop)
    step = loop.step
    case = [step.batch, f'{step.side}x{step.side}']
    rows.append([step.family, 'colorjax run.py loop', dtype, *case, rate,
                 step.mfu(loop.images_per_second, peak),
                 f'{ratio}x the step; {steps} steps, {seconds} s'])
    rows.append([step.family, 'colorjax input pipeline', '-', *case, pipeline_rate, '-',
                 f'{pipeline_ratio}x the step'])
  return rows


SUMMARY_HEADER = ['family', 'framework', 'dtype', 'batch', 'size', 'images/s', 'MFU', 'note']


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
  if config.loop_seconds:
    try:
      zhang.check(_loop_config(config, LOOP_MIN_STEPS))
    except UsageError as error:  # what the loop calls data.source, the benchmark loop_source
      raise UsageError(str(error).replace('--config.data.source=', '--config.loop_source=')) \
          from None
  unknown = set(config.formulations) - {'taps', 'nhwc'}
  if unknown:
    raise UsageError(f"unknown formulation(s) {', '.join(sorted(unknown))}: choose taps or nhwc")


def _tiny_cnn_rows(config):
  """[what, size, formulation, ms/iteration] of each of sizes and formulations (none with
  0 steps)."""
  if not config.steps:
    return []
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
  return rows


def _pipeline_rows(config):
  """[source, crop, records, images/s] of each of pipeline_cases and pipeline_formats."""
  rows = []
  for case in _pipeline_cases(config):
    source_size, crop = _size(case.replace(':', 'x'))
    crops = _pipeline_images(config.pipeline_examples, source_size)
    for record_format in config.pipeline_formats:
      rate = pipeline_images_per_second(_pipeline_source(crops, record_format), crop,
                                        config.pipeline_batch_size, config.pipeline_batches)
      print(f'pipeline {source_size}x{source_size} -> {crop}x{crop} crops, {record_format}: '
            f'{rate:,.0f} images/s', flush=True)
      rows.append([f'{source_size}x{source_size}', f'{crop}x{crop}', record_format,
                   f'{rate:,.0f}'])
  return rows


def main(config, workdir):
  started = time.perf_counter()
  check(config)
  tiny_cnn = _tiny_cnn_rows(config)
  device = jax.devices()[0]
  peak = throughput.peak_tflops(device.device_kind, config.peak_tflops)
  families, torch_device = family_rows(config, peak)
  loop = run_loop(config, workdir, families, started) if config.loop_seconds else None
  lab = [lab_row(config)] if config.lab_batch else []
  if lab:
    print('rgb -> Lab: ' + ' | '.join(lab[0]), flush=True)
  pipeline_rows = _pipeline_rows(config)
  per_core_rows, resume_rows, tf = _per_core_and_resume(config)
  summary = report.markdown_table(SUMMARY_HEADER,
                                  summary_rows(families, loop, peak, config.torch_compile))
  sections = [
      f'Backend `{jax.default_backend()}` ({device.device_kind}), {jax.device_count()} '
      f'device(s); the whole run took {time.perf_counter() - started:.0f} s.',
      '## Summary', 'The table the run prints at its end: the sections below give the rest.',
      summary]
  if tiny_cnn:
    sections += [
        '## Tiny CNN', f'Each figure is the best of {config.repeats} timings of '
        f'{config.steps} iterations under one jitted lax.scan (MSE on ab, Adam), compile '
        'excluded.',
        report.markdown_table(['what', 'size', 'formulation', 'ms/iteration'], tiny_cnn),
        'taps: NCHW sum of shifted planes (layers.conv3x3_taps); nhwc: XLA\'s convolution '
        '(layers.Conv3x3 channels-last).']
  sections += [
      '## Training step of each family',
      'The step each program trains with, in each compute dtype: `unet` the unet_portrait '
      'gray -> RGB step (MAE, Adam), `gan` the yuv_gan default (one critic and one generator '
      'update; BCE, Adam), `zhang_softmax` / `zhang_regression` the full-width Zhang et al. '
      'network with its rebalanced soft cross-entropy / ab MSE (AdamW), `flowers_resnet` the '
      'ResNet-18 colorizer stage (MSE on shifted ab, SGD). init: the fresh state '
      '(one compiled function); compile: the step\'s XLA compilation; images/s: the best of '
      f'{config.repeats} windows of {config.family_steps} steps after a warm-up step. PyTorch: '
      'the same networks, loss and optimizer in PyTorch (benchmark/torch_reference.py; '
      'the same parameter counts; channels_last; bfloat16: autocast), '
      f'{"through torch.compile" if config.torch_compile else "eager"}, on '
      f'{torch_device or "-"}, timed the same way on the same batch right after; its first '
      'step: the warm-up, torch.compile\'s compilation included.' + (
          '' if torch_device else ' **torch does not import here (or --config.torch=False): no '
          'PyTorch column.**') + ' ' + MFU_NOTE.format(
          peak=f'{peak:g} TFLOP/s per device' if peak else 'unknown for this device: no MFU'),
      report.markdown_table(FAMILY_HEADER, [family_cells(row, peak) for row in families])]
  if loop:
    sections += [
        '## Training loop against the step',
        f'`run.py`\'s own loop (programs/zhang.py: input pipeline from `{config.loop_source}`, '
        'logging, checkpoints) training the full-width Zhang et al. network (softmax head) at '
        'the zhang_softmax row\'s batch and size, for about '
        f'{config.loop_seconds:g} s of training (steps from the slower of the step alone and '
        'the pipeline alone; fewer where --config.time_limit_s needs it): the median of its '
        'logged images/s after the first window, against the step alone (the family table). '
        'seconds: the whole loop, its prior, compilation and evaluation too. pipeline: its '
        f'input pipeline alone, host batches ({config.pipeline_batches} after 5 warm-up '
        'batches); a loop near the pipeline\'s rate and below the step\'s is input-bound.',
        report.markdown_table(LOOP_HEADER, [loop_cells(loop)])]
  if lab:
    sections += [
        '## sRGB -> Lab',
        'uint8 RGB to Lab: jitted `color.lab_from_uint8` (best of 10) against scikit-image\'s '
        '`rgb2lab` on the uint8 batch and on it as float32 (best of 3), the same crops.',
        report.markdown_table(['batch', 'colorjax ms', 'skimage uint8 ms', 'ratio',
                               'skimage float32 ms', 'ratio'], lab)]
  if pipeline_rows:
    sections += [
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
                              resume_rows)]
  path = report.write_report(workdir, 'Benchmark', sections)
  print(f'report: {path}\n\n{summary}', flush=True)
