"""The input pipeline: a source's examples -> this process's share of every global batch,
decoded ahead in threads, then global jax.Arrays on the devices.

Batches are uint8 RGB NHWC (+ 'label'); colour conversion happens on device, in the step.
Global train batch k is a function of (seed, k) alone, whatever the number of processes:
global example i = k * batch_size + j is record permutation(seed, epoch)[i % N] of the
split's N records, epoch = i // N, cropped and flipped by draws from (seed, i). Eval batches
are deterministic and shared out the same way, padded to full batches with 'mask' 1 for real
examples and 0 for padding, so every example counts exactly once. Decoding is simplejpeg
(JPEG) or Pillow in a thread pool (both release the GIL).
"""

import collections
import concurrent.futures
import functools
import hashlib
import itertools
import math
import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from colorjax.data import images
from colorjax.data.sources import Source
from colorjax.errors import UsageError


def _resize_short_side(image, size, always=False):
  """Resize so the short side is `size` (when smaller, or always), keeping the aspect ratio."""
  h, w = image.shape[:2]
  if not always and min(h, w) >= size:
    return image
  scale = size / min(h, w)
  return images.resize_rgb(image, (max(size, math.ceil(h * scale)),
                                   max(size, math.ceil(w * scale))))


def _process(process_index, process_count):
  """The given process (tests fake several), else this JAX process."""
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


def _process_rows(batch_size, process_index, process_count):
  """The rows of every global batch this process holds: [p * b, (p + 1) * b), b =
  batch_size / process_count, which to_global places on this process's devices."""
  if batch_size % process_count:
    raise UsageError(f'batch size {batch_size} must divide evenly over {process_count} '
                     'processes')
  share = batch_size // process_count
  return range(process_index * share, (process_index + 1) * share)


@functools.lru_cache(maxsize=8)
def _permutation(seed, epoch, num_examples):
  """The order of the records in epoch `epoch`. Cached, as every example of the epoch asks and a
  miss permutes the whole split (10 MB for ImageNet); 8 hold an epoch and the next for a few
  pipelines at once."""
  return np.random.default_rng([seed, 0, epoch]).permutation(num_examples)


def _record(seed, index, num_examples):
  """The record global example `index` reads: a fresh seeded permutation every epoch."""
  epoch, position = divmod(index, num_examples)
  return int(_permutation(seed, epoch, num_examples)[position])


def _random_crop(image, crop, seed, index):
  """A crop x crop window at an offset, flipped left-right or not, drawn from (seed, index)."""
  draws = _uniforms(seed, index, 3)
  h, w = image.shape[:2]
  y, x = int(draws[0] * (h - crop + 1)), int(draws[1] * (w - crop + 1))
  window = image[y:y + crop, x:x + crop]
  return window[:, ::-1] if draws[2] < 0.5 else window


def _uniforms(seed, index, count):
  """`count` uniform draws in [0, 1) that depend on (seed, index) alone: a hash, so any
  example's draws cost the same 2 us (seeding a numpy generator per example took 25)."""
  digest = hashlib.blake2b(f'{seed}:{index}'.encode(), digest_size=4 * count).digest()
  return np.frombuffer(digest, '<u4') / 2.0**32


def _centre_crop(image, crop):
  image = _resize_short_side(image, crop, always=True)
  y, x = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
  return image[y:y + crop, x:x + crop]


WORKERS = min(os.cpu_count() or 1, 32)  # decode threads: Pillow decodes outside the GIL
CHUNK = 8  # examples per task: a task per example cost as much CPU in hand-offs as a decode
AHEAD = 2  # batches in flight beyond the one the caller waits for


@functools.cache
def _pool():
  """One decode pool for every pipeline of the process; its threads end with the process."""
  return concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix='colorjax-data')


def _batches(make_example, index_batches, fields):
  """Batches of make_example(i) over each list of `index_batches` (an iterable, possibly
  infinite); `fields` maps each key to its (shape, dtype). Tasks of CHUNK examples write their
  rows in place, AHEAD batches ahead, so the threads stay busy without batches piling up."""
  pending = collections.deque()
  try:
    for indices in index_batches:
      batch = {key: np.empty((len(indices), *shape), dtype)
               for key, (shape, dtype) in fields.items()}
      tasks = [_pool().submit(_fill, batch, make_example, indices, first)
               for first in range(0, len(indices), CHUNK)]
      pending.append((batch, tasks))
      if len(pending) > AHEAD:
        yield _finished(*pending.popleft())
    while pending:
      yield _finished(*pending.popleft())
  finally:
    for _, tasks in pending:  # an abandoned iterator stops its queued work
      for task in tasks:
        task.cancel()


def _fill(batch, make_example, indices, first):
  for row in range(first, min(first + CHUNK, len(indices))):
    example = make_example(indices[row])
    for key, array in batch.items():
      array[row] = example[key]


def _finished(batch, tasks):
  for task in tasks:
    task.result()  # raises a task's error here, in the caller
  return batch


def train_batches(source: Source, config, start_step: int = 0, process_index=None,
                  process_count=None):
  """Infinite iterator of this process's share of the global batches {'rgb': uint8
  BxHxWx3, 'label': int32 B}, from step `start_step` on: the batches an unbroken run would
  see there."""
  process_index, process_count = _process(process_index, process_count)
  rows = _process_rows(config.batch_size, process_index, process_count)
  crop, seed, num = config.crop, config.seed, source.num_examples
  short_side = config.get('train_short_side', 0)

  def example(index):
    record = source.read(_record(seed, index, num), short_side)
    image = (_resize_short_side(record['image'], short_side, always=True) if short_side
             else record['image'])
    image = _random_crop(_resize_short_side(image, crop), crop, seed, index)
    return {'rgb': image, 'label': record['label']}

  steps = itertools.count(start_step)
  index_batches = ([k * config.batch_size + j for j in rows] for k in steps)
  return _batches(example, index_batches, {'rgb': ((crop, crop, 3), np.uint8),
                                            'label': ((), np.int32)})


def num_eval_batches(num_examples, batch_size):
  return math.ceil(num_examples / batch_size)


def eval_batches(source: Source, config, num_batches: int, process_index=None,
                 process_count=None):
  """This process's share of `num_batches` deterministic global batches {'rgb', 'label',
  'mask'}: resize the short side to the crop size, centre crop, pad the tail with mask 0.
  Fewer batches than the source needs evaluate its first examples."""
  process_index, process_count = _process(process_index, process_count)
  rows = _process_rows(config.eval_batch_size, process_index, process_count)
  crop = config.crop
  padding = {'rgb': np.zeros((crop, crop, 3), np.uint8), 'label': -1, 'mask': 0.0}

  def example(index):
    if index >= source.num_examples:
      return padding
    record = source.read(index, crop)
    return {'rgb': _centre_crop(record['image'], crop), 'label': record['label'], 'mask': 1.0}

  index_batches = ([k * config.eval_batch_size + j for j in rows] for k in range(num_batches))
  return _batches(example, index_batches, {'rgb': ((crop, crop, 3), np.uint8),
                                            'label': ((), np.int32), 'mask': ((), np.float32)})


def to_global(batch: dict, mesh) -> dict:
  """This process's batch -> global jax.Arrays, batch axis split over the mesh axis 'data'."""
  sharding = NamedSharding(mesh, P('data'))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def prefetch_to_device(host_batches, mesh, size=2):
  """Keep `size` batches in flight to the devices, so a step never waits on a transfer."""
  queue = collections.deque()
  for batch in host_batches:
    queue.append(to_global(batch, mesh))
    if len(queue) > size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
