"""tf.data input pipelines: named sources, crops, batching, host sharding, exact resume.

A source is a config string:
  NAME (any tfds image dataset, e.g. stl10, oxford_flowers102, imagenette, imagenet2012),
  folder:PATH (photos found recursively), npz:PATH (train_images / test_images arrays),
  samples (the colour photos bundled with scikit-image; offline).

Batches are uint8 RGB NHWC (+ 'label'); colour conversion happens on device, in the step.
Global train batch k is a function of (seed, k) alone, whatever the number of processes:
every process runs the same seeded shuffle of the split's undecoded records, takes its own
disjoint share of each global batch (the rows its devices hold) and decodes only that; a
resume skips the undecoded records of the first k batches, and crop and flip draw stateless
randomness from (seed, global element index). So one process or several, interrupted or
not, the model sees the same global batches. (Each process streams the split's records but
decodes a 1 / process_count share of them: decoding is the cost.) Eval batches are
deterministic and shared out the same way, padded to full batches with 'mask' 1 for real
examples and 0 for padding, so every example counts exactly once.
"""

import collections
import contextlib
import dataclasses
import hashlib
import io
import math
import pathlib
from collections.abc import Callable

import jax
import numpy as np
import skimage.util
import tensorflow as tf
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from colorjax import images
from colorjax.errors import UsageError

AUTOTUNE = tf.data.AUTOTUNE
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
  """One split of a source, not yet decoded.

  `records` yields raw records (encoded bytes, a file path, or a padded array); `decode` maps
  one to {'image': uint8 HxWx3, 'label': int64} inside tf.data.
  """
  records: tf.data.Dataset
  num_examples: int
  decode: Callable[[dict], dict]
  skipped: list = dataclasses.field(default_factory=list)  # unreadable files, for the report
  about: str = ''  # which images these are, for reports (load_source fills it)


def decode_encoded(record):
  image = tf.io.decode_image(record['image'], channels=3, dtype=tf.uint8,
                             expand_animations=False)
  return {'image': image, 'label': record['label']}


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
  records = tf.data.Dataset.from_tensor_slices({
      'image': padded, 'size': np.asarray([rgb.shape[:2] for rgb in rgb_list], np.int32),
      'label': np.asarray(labels, np.int64)})
  return Source(records, len(rgb_list), _unpad)


def _unpad(record):
  h, w = record['size'][0], record['size'][1]
  return {'image': record['image'][:h, :w], 'label': record['label']}


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


def _decode_file(record):
  image = tf.numpy_function(lambda p: images.read_rgb(p.decode()), [record['image']], tf.uint8)
  return {'image': tf.ensure_shape(image, (None, None, 3)), 'label': record['label']}


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
  records = tf.data.Dataset.from_tensor_slices(
      {'image': kept, 'label': np.full(len(kept), -1, np.int64)})
  return Source(records, len(kept), _decode_file, skipped)


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


def _prepared_builder(tfds, name, config):
  """The dataset's builder, downloaded and prepared if it was not and may be."""
  try:
    builder = tfds.builder(name, data_dir=config.tfds_data_dir or None)
  except Exception as e:
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
  records = builder.as_dataset(split=split_name, shuffle_files=False,
                               decoders={'image': tfds.decode.SkipDecoding()})
  has_label = 'label' in builder.info.features
  records = records.map(lambda ex: {'image': ex['image'], 'label': ex['label'] if has_label
                                    else tf.constant(-1, tf.int64)})
  num = _split_size(builder, split_name) or int(records.reduce(0, lambda n, _: n + 1))
  return Source(records, num, decode_encoded)


def _split_size(builder, split):
  try:
    return builder.info.splits[split].num_examples
  except (KeyError, ValueError):
    return None  # e.g. under tfds.testing.mock_data, which knows no split sizes


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
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  short = tf.minimum(h, w)
  scale = tf.cast(size, tf.float32) / tf.cast(short, tf.float32)
  needed = tf.logical_or(always, short < size)
  new_h = tf.maximum(size, tf.cast(tf.math.ceil(tf.cast(h, tf.float32) * scale), tf.int32))
  new_w = tf.maximum(size, tf.cast(tf.math.ceil(tf.cast(w, tf.float32) * scale), tf.int32))
  return tf.cond(needed,
                 lambda: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
                     image, (new_h, new_w), antialias=True)), 0, 255), tf.uint8),
                 lambda: image)


def _process(process_index, process_count):
  """The given process (tests fake several), else this JAX process."""
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


def _share(indexed, batch_size, process_index, process_count):
  """Of (global index, element) pairs cut into global batches of `batch_size`, the ones this
  process holds: rows [p * b, (p + 1) * b) of every batch, b = batch_size / process_count,
  which to_global places on this process's devices."""
  if batch_size % process_count:
    raise UsageError(f'batch size {batch_size} must divide evenly over {process_count} '
                     'processes')
  share = batch_size // process_count
  first = process_index * share

  def mine(index, _):
    row = index % batch_size
    return tf.logical_and(row >= first, row < first + share)

  return indexed.filter(mine), share


def train_batches(source: Source, config, start_step: int = 0, process_index=None,
                  process_count=None):
  """Infinite iterator of this process's share of the global batches {'rgb': uint8
  BxHxWx3, 'label': int32 B}, from step `start_step` on: the batches an unbroken run would
  see there."""
  process_index, process_count = _process(process_index, process_count)
  crop = config.crop
  seed = config.seed

  def augment(index, record):
    example = source.decode(record)
    image = (_resize_short_side(example['image'], config.train_short_side, always=True)
             if config.get('train_short_side') else example['image'])
    image = _resize_short_side(image, crop)
    crop_seed = tf.stack([tf.constant(seed, tf.int64), 2 * index])
    flip_seed = tf.stack([tf.constant(seed, tf.int64), 2 * index + 1])
    image = tf.image.stateless_random_crop(image, (crop, crop, 3), seed=crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return {'rgb': image, 'label': tf.cast(example['label'], tf.int32)}

  first = start_step * config.batch_size
  ds = source.records.shuffle(min(config.shuffle_buffer, source.num_examples), seed=seed,
                              reshuffle_each_iteration=True).repeat()
  ds, share = _share(ds.skip(first).enumerate(start=first), config.batch_size, process_index,
                     process_count)
  ds = ds.map(augment, num_parallel_calls=AUTOTUNE, deterministic=True)
  return ds.batch(share, drop_remainder=True).prefetch(AUTOTUNE).as_numpy_iterator()


def num_eval_batches(num_examples, batch_size):
  return math.ceil(num_examples / batch_size)


def eval_batches(source: Source, config, num_batches: int, process_index=None,
                 process_count=None):
  """This process's share of `num_batches` deterministic global batches {'rgb', 'label',
  'mask'}: resize the short side to the crop size, centre crop, pad the tail with mask 0.
  Fewer batches than the source needs evaluate its first examples."""
  process_index, process_count = _process(process_index, process_count)
  crop = config.crop
  capacity = num_batches * config.eval_batch_size

  def centre(_, record):
    example = source.decode(record)
    image = _resize_short_side(example['image'], crop, always=True)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    image = tf.image.crop_to_bounding_box(image, (h - crop) // 2, (w - crop) // 2, crop, crop)
    return {'rgb': image, 'label': tf.cast(example['label'], tf.int32),
            'mask': tf.constant(1.0, tf.float32)}

  def padding(index):
    return index, {'rgb': tf.zeros((crop, crop, 3), tf.uint8),
                   'label': tf.constant(-1, tf.int32), 'mask': tf.constant(0.0, tf.float32)}

  real = source.records.take(capacity).enumerate()
  pads = tf.data.Dataset.range(min(source.num_examples, capacity), capacity).map(padding)
  real, share = _share(real, config.eval_batch_size, process_index, process_count)
  pads, _ = _share(pads, config.eval_batch_size, process_index, process_count)
  ds = real.map(centre, num_parallel_calls=AUTOTUNE, deterministic=True)
  ds = ds.concatenate(pads.map(lambda _, example: example))
  return ds.batch(share).prefetch(AUTOTUNE).as_numpy_iterator()


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
