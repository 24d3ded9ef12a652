"""Random-access input pipelines: named sources, crops, batching, host sharding, O(1) resume.

A source is a config string:
  NAME (any tfds image dataset, e.g. stl10, oxford_flowers102, imagenette, imagenet2012),
  folder:PATH (photos found recursively), npz:PATH (train_images / test_images arrays),
  samples (the colour photos bundled with scikit-image; offline).

Batches are uint8 RGB NHWC (+ 'label'); colour conversion happens on device, in the step.
Global train batch k is a function of (seed, k) alone, whatever the number of processes:
global example i = k * batch_size + j is record permutation(seed, epoch)[i % N] of the
split's N records, epoch = i // N, cropped and flipped by draws from (seed, i). Every source
reads one record by index (tfds through ArrayRecord), so a process reads and decodes only the
rows of each global batch its devices hold, and a resume at any step starts there at once.
Eval batches are deterministic and shared out the same way, padded to full batches with
'mask' 1 for real examples and 0 for padding, so every example counts exactly once.
Decoding is simplejpeg (JPEG) or Pillow in a thread pool (both release the GIL); TensorFlow is never imported,
except by tfds when it prepares a dataset.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import io
import itertools
import math
import os
import pathlib
from collections.abc import Callable

import jax
import numpy as np
import skimage.util
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from colorjax import images
from colorjax.errors import UsageError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

# (train split, eval split) of the tfds datasets the experiments name; others: train / test.
TFDS_SPLITS = {
    'stl10': ('train+unlabelled', 'test'),
    'oxford_flowers102': ('train', 'validation'),
    'imagenet2012': ('train', 'validation'),
    'imagenette': ('train', 'validation'),
    'imagenet_resized': ('train', 'validation'),
    'places365_small': ('train', 'validation'),
}


@dataclasses.dataclass
class Source:
  """One split of a source, read one example at a time by index.

  `read(index, short_side)` -> {'image': uint8 HxWx3, 'label': int}, the image possibly a view
  of the source's memory (the pipeline crops it and copies only the crop into the batch); a
  short_side > 0 says the image is about to be resized to that short side, so a JPEG may be
  decoded at a reduced scale no smaller than that (images.read_rgb). source[i] -> example i as
  stored, a copy.
  """
  num_examples: int
  read: Callable[[int, int], dict]
  skipped: list = dataclasses.field(default_factory=list)  # unreadable files, for the report
  about: str = ''  # which images these are, for reports (load_source fills it)

  def __len__(self):
    return self.num_examples

  def __getitem__(self, index):
    if not 0 <= index < self.num_examples:
      raise IndexError(f'example {index} of a source of {self.num_examples}')
    example = self.read(index, 0)
    return {'image': np.array(example['image']), 'label': example['label']}


def encoded_source(encoded, labels) -> Source:
  """Encoded image bytes (JPEG, PNG, ... as tfds stores them) held in memory."""
  return Source(len(encoded), lambda i, short_side: {
      'image': images.read_rgb(encoded[i], short_side), 'label': int(labels[i])})


MAX_CROP = 2048  # a larger crop would resize every image up to it: a typo, not a wish


def check(config, devices: int = 1):
  """The data block's mistakes, found before anything loads or trains: batch sizes that do
  not split over `devices` (a global batch is sharded over every device), crops out of
  range, unknown gray handling."""
  for field in ('batch_size', 'eval_batch_size'):
    value = config[field]
    if value <= 0 or value % devices:
      raise UsageError(f'--config.data.{field}={value} must be a positive multiple of the '
                       f'{devices} device(s)')
  if not 1 <= config.crop <= MAX_CROP:
    raise UsageError(f'--config.data.crop={config.crop} must be 1 to {MAX_CROP} pixels')
  short_side = config.get('train_short_side', 0)
  if short_side and not config.crop <= short_side <= MAX_CROP:
    raise UsageError(f'--config.data.train_short_side={short_side} must be 0 (images as '
                     f'stored) or {config.crop} (the crop) to {MAX_CROP} pixels')
  if config.gray not in ('weight', 'drop'):
    raise UsageError(f"--config.data.gray={config.gray!r}: use 'weight' or 'drop'")


def _with_colour(rgb_list, labels, config, what):
  """The images with colour when gray ones are dropped; one line if none has any: a source
  without colour teaches nothing (every loss would be 0)."""
  colour = [images.has_colour(rgb, config.gray_threshold) for rgb in rgb_list]
  if rgb_list and not any(colour):
    raise UsageError(f'{what} has no image with colour (every |a|, |b| <= '
                     f'{config.gray_threshold}): colorization learns from colour photos')
  if config.gray == 'drop':
    rgb_list = [rgb for rgb, keep in zip(rgb_list, colour) if keep]
    labels = [label for label, keep in zip(labels, colour) if keep]
  return rgb_list, labels


def in_memory_source(rgb_list, labels, config, what='the data') -> Source:
  """Images held in host memory, as one zero-padded array plus each image's height and width
  (equal sizes pad nothing), so reading an example is a slice, not a decode."""
  rgb_list, labels = _with_colour(rgb_list, labels, config, what)
  if not rgb_list:
    raise UsageError(f'{what} holds no images; pass a source with images')
  height = max(rgb.shape[0] for rgb in rgb_list)
  width = max(rgb.shape[1] for rgb in rgb_list)
  padded = np.zeros((len(rgb_list), height, width, 3), np.uint8)
  for i, rgb in enumerate(rgb_list):
    padded[i, :rgb.shape[0], :rgb.shape[1]] = rgb
  sizes = [rgb.shape[:2] for rgb in rgb_list]

  def read(index, _):
    h, w = sizes[index]
    return {'image': padded[index, :h, :w], 'label': int(labels[index])}

  return Source(len(rgb_list), read)


def _samples(split, config) -> Source:
  """The bundled photos; smoke-test data, so train and eval are the same photos. Labels are
  the photo's index, for models that need a label."""
  del split
  photos = [images.sample_photo(name) for name in images.SAMPLE_PHOTOS]
  return in_memory_source(photos, list(range(len(photos))), config)


def _npz(path, split, config) -> Source:
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise UsageError(f"npz file '{path}' not found: pass --config.data.source=npz:PATH to an "
                     '.npz with train_images and test_images arrays (N x H x W x 3)')
  key = 'train_images' if split == 'train' else 'test_images'
  try:
    with np.load(path, allow_pickle=False) as arrays:
      if key not in arrays:
        raise UsageError(f"{path} has no '{key}' array (it has: {', '.join(arrays.files)}); "
                         'the npz source needs train_images and test_images, N x H x W x 3')
      array = arrays[key]
  except UsageError:
    raise
  except Exception as e:  # not an npz, truncated, or pickled objects: numpy raises many types
    raise UsageError(f'{path} is not an .npz of image arrays ({type(e).__name__}: {e}); save '
                     'train_images and test_images with numpy.savez') from None
  if array.ndim != 4 or array.shape[-1] != 3 or not len(array):
    raise UsageError(f"{path}: '{key}' has shape {array.shape}, expected N x H x W x 3, N > 0")
  if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
    raise UsageError(f"{path}: '{key}' is {array.dtype}; save uint8, or float in [0, 1]")
  if np.issubdtype(array.dtype, np.floating):
    finite = np.isfinite(array)
    if not finite.all() or array.min() < 0 or array.max() > 1:
      values = array[finite]
      found = f'{values.min():.3g}..{values.max():.3g}' if values.size else 'no finite value'
      raise UsageError(f"{path}: float '{key}' must be finite and lie in [0, 1] (found "
                       f'{found}, {np.count_nonzero(~finite)} NaN or Inf); save uint8 or '
                       'scale to [0, 1]')
  rgb = skimage.util.img_as_ubyte(array)  # uint8 passes through; float [0, 1] is scaled
  return in_memory_source(list(rgb), [-1] * len(rgb), config, f"{path} ('{key}')")


def _folder_split(relative_path: str, val_percent: int) -> str:
  """Stable per file: adding or removing other files never moves this one."""
  digest = hashlib.sha256(relative_path.encode()).digest()
  return 'eval' if int.from_bytes(digest[:4], 'big') % 100 < val_percent else 'train'


def _readable(path):
  try:
    return images.read_rgb(path)
  except Exception:  # corrupt or unsupported: skipped and counted, never a crash mid-epoch
    return None


def _folder(path, split, config) -> Source:
  """Files are checked once here (unreadable ones are skipped and listed, nearly gray ones
  dropped if asked); the pipeline then decodes them again as it reads, so a folder of any
  size streams from disk."""
  root = pathlib.Path(path).expanduser()
  if not root.is_dir():
    raise UsageError(f"folder '{root}' not found: pass --config.data.source=folder:PATH")
  files = sorted(p for p in root.rglob('*') if p.suffix.lower() in IMAGE_EXTENSIONS)
  if not files:
    raise UsageError(f'{root} holds no images ({", ".join(IMAGE_EXTENSIONS)}), searched '
                     'recursively')
  wanted = 'train' if split == 'train' else 'eval'
  files = [p for p in files if _folder_split(str(p.relative_to(root)), config.val_percent)
           == wanted]
  kept, skipped, colour = [], [], []
  for p in tqdm(files, desc=f'checking {split} images in {root}', leave=False,
                disable=None):  # shown on a terminal, not in logs
    rgb = _readable(p)
    if rgb is None:
      skipped.append(str(p))
      continue
    colour.append(images.has_colour(rgb, config.gray_threshold))
    if config.gray != 'drop' or colour[-1]:
      kept.append(str(p))
  if colour and not any(colour):
    raise UsageError(f'{root}: no image of the {split} split has colour (every |a|, |b| <= '
                     f'{config.gray_threshold}): colorization learns from colour photos')
  if not kept:
    raise UsageError(f'{root}: no usable image in the {split} split ({len(files)} files, '
                     f'{len(skipped)} unreadable); add images or change data.val_percent')
  if skipped:
    tqdm.write(f'{root}: skipped {len(skipped)} unreadable file(s) of {len(files)} in the '
               f"{split} split: {', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}")
  return Source(len(kept), lambda i, short_side: {
      'image': images.read_rgb(kept[i], short_side), 'label': -1}, skipped)


@contextlib.contextmanager
def _absl_errors_only():
  import absl.logging
  previous = absl.logging.get_verbosity()
  absl.logging.set_verbosity(absl.logging.ERROR)
  try:
    yield
  finally:
    absl.logging.set_verbosity(previous)


def _tfds_not_available(name, builder):
  kind = ('it needs a manual download'
          if getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None)
          else 'it is not on disk and could not be downloaded')
  builder_dir = builder.data_dir
  instead = ('--config.data.source=samples (offline)' if name == 'imagenette' else
             '--config.data.source=imagenette (tfds downloads it) or '
             '--config.data.source=samples (offline)')
  return UsageError(
      f"tfds dataset '{name}' is not available: {kind} (tfds looks in {builder_dir}). Prepare "
      f'it as https://www.tensorflow.org/datasets/catalog/{name.split("/")[0]} describes, or '
      f'train on {instead}')


def _prepare_again(name, error, config):
  """The answer for a dataset prepared in another format than array_record (TFRecord)."""
  data_dir = f", data_dir='{config.tfds_data_dir}'" if config.tfds_data_dir else ''
  return UsageError(
      f"tfds dataset '{name}' cannot be read by index ({type(error).__name__}: {error}); delete "
      f"its TFRecord copy (folder {name}/VERSION of the tfds data_dir) and prepare it again in "
      'the array_record format: python -c "import tensorflow_datasets as tfds; '
      f"tfds.builder('{name}'{data_dir}, file_format='array_record').download_and_prepare()\"")


def _prepared_builder(tfds, name, config):
  """The dataset's builder, downloaded and prepared if it was not and may be."""
  try:
    builder = tfds.builder(name, data_dir=config.tfds_data_dir or None,
                           file_format='array_record')  # the random-access format
  except Exception as e:
    if 'file format' in str(e).lower():  # prepared earlier in another format (TFRecord)
      raise _prepare_again(name, e, config) from None
    raise UsageError(f"unknown data source '{name}' ({type(e).__name__}): use a tfds dataset "
                     'name, folder:PATH, npz:PATH or samples') from None
  if builder.is_prepared():
    return builder
  if not config.download:
    raise _tfds_not_available(name, builder)
  try:
    with contextlib.redirect_stdout(io.StringIO()):  # tfds prints its progress
      builder.download_and_prepare()
  except Exception:  # no network, manual download missing, ...: all one answer
    raise _tfds_not_available(name, builder) from None
  return builder


def _tfds(name, split, config) -> Source:
  import tensorflow_datasets as tfds  # slow to import; only tfds sources need it
  if config.gray == 'drop':
    raise UsageError("data.gray='drop' needs an in-memory source (samples, npz:, folder:); "
                     "tfds sources use --config.data.gray=weight")
  with _absl_errors_only():  # tfds logs its probing of folders; failures are reported below
    builder = _prepared_builder(tfds, name, config)
  train_split, eval_split = TFDS_SPLITS.get(name.split('/')[0], ('train', 'test'))
  split_name = train_split if split == 'train' else eval_split
  if 'image' not in builder.info.features:
    raise UsageError(f"tfds dataset '{name}' has no 'image' feature; pick an image dataset")
  try:
    records = builder.as_data_source(split=split_name,
                                     decoders={'image': tfds.decode.SkipDecoding()})
  except Exception as e:  # e.g. prepared as TFRecord, which has no random access
    raise _prepare_again(name, e, config) from None
  has_label = 'label' in builder.info.features

  def read(index, short_side):
    record = records[index]
    return {'image': images.read_rgb(record['image'], short_side),
            'label': int(record['label']) if has_label else -1}

  return Source(len(records), read)


def load_source(config, split: str) -> Source:
  """`split` is 'train' or 'eval'."""
  check(config)
  spec = config.source
  kind, _, path = spec.partition(':')
  if spec == 'samples':
    source = _samples(split, config)
  elif kind == 'npz' and path:
    source = _npz(path, split, config)
  elif kind == 'folder' and path:
    source = _folder(path, split, config)
  else:
    source = _tfds(spec, split, config)
  return dataclasses.replace(source, about=_about(spec, split, config))


def _about(spec, split, config) -> str:
  """Which images a split holds, as a report states it: held out, or the training images."""
  kind, _, path = spec.partition(':')
  if spec == 'samples':
    return ("the bundled photos, which are also the training photos (no held-out split: a "
            'smoke test, not a score)')
  if split == 'train':
    return f'training images of `{spec}`'
  if kind == 'folder':
    return (f'held-out photos of `{path}` ({config.val_percent}% of the files, chosen by '
            'file name, never trained on)')
  if kind == 'npz':
    return f'held-out photos of `{path}` (its test_images, never trained on)'
  held_out = TFDS_SPLITS.get(spec.split('/')[0], ('train', 'test'))[1]
  return f"held-out photos of tfds `{spec}` (its '{held_out}' split, never trained on)"


def describe(evaluation_images: int, source: Source) -> str:
  """'N <which images>', for the sentence of a report that says what was scored."""
  return f'{evaluation_images} {source.about}'


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


def _rows(batch_size, process_index, process_count):
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
  rows = _rows(config.batch_size, process_index, process_count)
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
  rows = _rows(config.eval_batch_size, process_index, process_count)
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
