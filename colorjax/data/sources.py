"""Data sources: one split of a named source, read one example at a time by index.

A source is a config string:
  NAME (any tfds image dataset, e.g. stl10, oxford_flowers102, imagenette, imagenet2012),
  folder:PATH (photos found recursively), npz:PATH (train_images / test_images arrays),
  samples (the colour photos bundled with scikit-image; offline).

Every source reads one record by index (tfds through ArrayRecord), so the pipeline
(pipeline.py) reads only the rows of each global batch this process holds, and a resume at
any step starts there at once. TensorFlow is never imported, except by tfds when it prepares
a dataset.
"""

import contextlib
import dataclasses
import hashlib
import io
import os
import pathlib
import re
import sys
from collections.abc import Callable

import numpy as np
import skimage.util
from tqdm import tqdm

from colorjax.data import images
from colorjax.errors import UsageError

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
  # files skipped (unreadable, or over the pixel budget), for the report
  skipped: list = dataclasses.field(default_factory=list)
  # index -> the example's file name where the source keeps one (a folder's path, a tfds
  # `file_name`), read without decoding the image: a benchmark protocol picks images by name.
  file_name: Callable[[int], str] | None = None

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
  range, unknown gray handling, a folder or npz file that is not there."""
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
  kind, _, path = config.source.partition(':')
  if kind == 'folder' and path and not local_path(kind, path).is_dir():
    raise UsageError(f"folder '{local_path(kind, path)}' not found: pass "
                     '--config.data.source=folder:PATH')
  if kind == 'npz' and path and not local_path(kind, path).is_file():
    raise UsageError(f"npz file '{local_path(kind, path)}' not found: pass "
                     '--config.data.source=npz:PATH to an .npz with train_images and '
                     'test_images arrays (N x H x W x 3)')


def _with_color(rgb_list, labels, config, what):
  """The images with colour when gray ones are dropped; one line if none has any: a source
  without colour teaches nothing (every loss would be 0)."""
  colored = [images.has_color(rgb, config.gray_threshold) for rgb in rgb_list]
  if rgb_list and not any(colored):
    raise UsageError(f'{what} has no image with colour (every |a|, |b| <= '
                     f'{config.gray_threshold}): colorization learns from colour photos')
  if config.gray == 'drop':
    rgb_list = [rgb for rgb, keep in zip(rgb_list, colored) if keep]
    labels = [label for label, keep in zip(labels, colored) if keep]
  return rgb_list, labels


def in_memory_source(rgb_list, labels, config, what='the data') -> Source:
  """Images held in host memory, as one zero-padded array plus each image's height and width
  (equal sizes pad nothing), so reading an example is a slice, not a decode."""
  rgb_list, labels = _with_color(rgb_list, labels, config, what)
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


def local_path(kind: str, path: str) -> pathlib.Path:
  """A source's PATH with ~ and $VARIABLES expanded (a config can name a folder by a
  variable: the bsds300 variants' $COLORJAX_BSDS300); one line naming a variable not set."""
  unset = re.findall(r'\$\{?(\w+)', os.path.expandvars(path))
  if unset:
    raise UsageError(f'--config.data.source={kind}:{path} names ${unset[0]}, which is not set: '
                     f'export {unset[0]}=PATH, or pass --config.data.source={kind}:PATH')
  return pathlib.Path(os.path.expandvars(path)).expanduser()


def _npz(path, split, config) -> Source:
  path = local_path('npz', path)  # there: check() saw it
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


def _readable(path) -> tuple[np.ndarray | None, str]:
  """(uint8 RGB, '') or (None, why it is skipped): a file is skipped and counted, never a
  crash mid-epoch."""
  try:
    return images.read_rgb(path), ''
  except images.TooLarge:
    return None, f'over the {images.pixel_budget()}'
  except Exception:  # corrupt or unsupported
    return None, 'unreadable'


def _folder(path, split, config) -> Source:
  """Files are checked once here (unreadable or over-budget ones are skipped and listed on
  stderr, nearly gray ones dropped if asked); the pipeline then decodes them again as it
  reads, so a folder of any size streams from disk."""
  root = local_path('folder', path)  # there: check() saw it
  files = sorted(p for p in root.rglob('*') if p.suffix.lower() in images.IMAGE_SUFFIXES)
  if not files:
    raise UsageError(f'{root} holds no images ({", ".join(images.IMAGE_SUFFIXES)}), searched '
                     'recursively')
  wanted = 'train' if split == 'train' else 'eval'
  files = [p for p in files if _folder_split(str(p.relative_to(root)), config.val_percent)
           == wanted]
  kept, skipped, colored = [], {}, []
  for p in tqdm(files, desc=f'checking {split} images in {root}', leave=False,
                disable=None):  # shown on a terminal, not in logs
    rgb, reason = _readable(p)
    if rgb is None:
      skipped.setdefault(reason, []).append(str(p))
      continue
    colored.append(images.has_color(rgb, config.gray_threshold))
    if config.gray != 'drop' or colored[-1]:
      kept.append(str(p))
  if colored and not any(colored):
    raise UsageError(f'{root}: no image of the {split} split has colour (every |a|, |b| <= '
                     f'{config.gray_threshold}): colorization learns from colour photos')
  if not kept:
    counts = ''.join(f'; {len(paths)} {reason}' for reason, paths in skipped.items())
    raise UsageError(f'{root}: no usable image in the {split} split ({len(files)} files'
                     f'{counts}): add images or change data.val_percent')
  for reason, paths in skipped.items():
    tqdm.write(f'{root}: skipped {len(paths)} file(s) of {len(files)} in the {split} split, '
               f"{reason}: {', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''}",
               file=sys.stderr)
  return Source(len(kept), lambda i, short_side: {
      'image': images.read_rgb(kept[i], short_side), 'label': -1},
      [path for paths in skipped.values() for path in paths], kept.__getitem__)


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
  if config.gray == 'drop':
    raise UsageError("data.gray='drop' needs an in-memory source (samples, npz:, folder:); "
                     "tfds sources use --config.data.gray=weight")
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # tensorflow's start-up chatter
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # ... and its oneDNN notice
  try:
    import tensorflow_datasets as tfds  # slow to import; only tfds sources need it
  except ImportError:
    raise UsageError(f"the data source '{name}' is a tfds dataset, which needs "
                     "tensorflow-datasets: pip install -e '.[tfds]', or train on folder:PATH, "
                     'npz:PATH or samples') from None
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

  def file_name(index):
    name = records[index]['file_name']
    return name.decode() if isinstance(name, bytes) else str(name)

  return Source(len(records), read,
                file_name=file_name if 'file_name' in builder.info.features else None)


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
  return source
