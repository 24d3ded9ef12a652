"""The field's benchmark (`run.py evaluate --protocol=val5k`): ImageNet val5k as CT2 and
DDColor evaluate on it, and the rows they publish.

val5k is the first 5,000 images of the ImageNet 2012 validation set (ILSVRC2012_val_00000001
to _00005000), each resized to a short side of 256 and centre-cropped to 256x256 as
torchvision's Resize(256) and CenterCrop(256) do on a PIL image (bilinear, anti-aliased when
shrinking). Every image counts, gray ones too, as in those scripts. The row: FID (Inception-v3
features of the outputs against those of the same images' ground truth, eval/fid.py), the
field's colourfulness CF of the outputs and deltaCF = |CF - CF of the ground truth|, PSNR and
SSIM (eval/metrics.py).
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image
from tqdm import tqdm

from colorjax import configs
from colorjax.eval import fid, photos, report
from colorjax.models import inception

NAME = 'val5k'
DATASET = 'imagenet2012'  # its validation split (sources.TFDS_SPLITS)
COUNT = 5000
SIDE = 256
FID_BATCH = 16  # photos whose Inception features are computed together


@dataclasses.dataclass(frozen=True)
class Published:
  method: str
  fid: float
  colorfulness: float
  colorfulness_delta: float
  psnr: float


SOURCE = ('Kang et al., "DDColor: Towards Photo-Realistic Image Colorization via Dual '
          'Decoders", ICCV 2023, Table 1 (ImageNet val5k)')
PUBLISHED = (
    Published('Zhang et al. 2016 (CIC)', 8.72, 31.60, 6.61, 22.64),
    Published('DeOldify', 6.59, 21.29, 16.92, 24.11),
    Published('BigColor', 5.36, 39.74, 1.53, 21.24),
    Published('DDColor-L', 3.92, 38.26, 0.05, 23.85),
)
# Every published row puts the ground truth's CF at CF + deltaCF or CF - deltaCF = 38.21.
GROUND_TRUTH_COLORFULNESS = 38.21


def square(rgb_uint8: np.ndarray, side: int = SIDE) -> np.ndarray:
  """torchvision's Resize(side) then CenterCrop(side) on a PIL image: the short side to
  `side` (the long one truncated to an int), bilinear, then the centred side x side."""
  h, w = rgb_uint8.shape[:2]
  size = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
  image = PIL.Image.fromarray(rgb_uint8)
  if size != (h, w):
    image = image.resize(size[::-1], PIL.Image.BILINEAR)
  top, left = (int(round((n - side) / 2.0)) for n in size)
  return np.asarray(image)[top:top + side, left:left + side]


def named_photos(paths, source_spec, count: int = COUNT):
  """(name, side x side uint8 RGB) of the protocol's images: the first `count` files of
  PATHs (sorted), or of a source's evaluation images (a folder: all its files) in the order
  of their file names where the source keeps them (ImageNet's validation set, the default:
  ILSVRC2012_val_00000001, ...), else in the source's order."""
  if paths:
    selected = photos.named_photos(paths, None)
  else:
    config = configs.data_config(source=source_spec or DATASET, val_percent=100)
    selected = _by_file_name(photos.eval_source(config))
  return ((name, square(rgb)) for name, rgb in itertools.islice(selected, count))


def _by_file_name(source):
  indices = range(len(source))
  if source.file_name:
    names = [source.file_name(i) for i in tqdm(indices, desc='reading file names',
                                                  unit='image', disable=None, leave=False)]
    indices = sorted(indices, key=names.__getitem__)
  for i in indices:
    yield (source.file_name(i) if source.file_name else f'#{i}'), source[i]['image']


class FidFeatures:
  """Inception-v3 features of the outputs and of the ground truths, FID_BATCH photos at a
  time, kept only as their running statistics (fid.FeatureStats)."""

  def __init__(self, variables):
    self._variables = jax.device_put(variables)
    self._jitted = jax.jit(lambda v, rgb_uint8: inception.fid_features(
        v, rgb_uint8.astype(jnp.float32) / 255.0))
    self._pending = []
    self.outputs, self.truths = fid.FeatureStats(), fid.FeatureStats()

  def add(self, output_uint8, truth_uint8):
    self._pending.append((output_uint8, truth_uint8))
    if len(self._pending) == FID_BATCH:
      self._flush()

  def _flush(self):
    if not self._pending:
      return
    count = len(self._pending)
    batch = np.stack([x for pair in self._pending for x in pair])  # output, truth, ...
    padded = np.concatenate([batch, np.repeat(batch[:1], 2 * FID_BATCH - len(batch), 0)])
    features = self.features(padded)[:2 * count]
    self.outputs.add(features[0::2])
    self.truths.add(features[1::2])
    self._pending = []

  def features(self, rgb_uint8) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 2048) float64 Inception features."""
    return np.asarray(self._jitted(self._variables, rgb_uint8), np.float64)

  def distance(self) -> float:
    self._flush()
    return fid.fid(self.outputs, self.truths)


def table(label: str, result: dict, fid_value: float | None) -> list[str]:
  """Markdown lines: the run's row (stats.bootstrap intervals; FID has none) under the
  published rows, with their source."""
  header = ['method', 'FID', 'CF', 'deltaCF', 'PSNR (dB)', 'SSIM']
  rows = [[p.method, f'{p.fid:.2f}', f'{p.colorfulness:.2f}', f'{p.colorfulness_delta:.2f}',
           f'{p.psnr:.2f}', ''] for p in PUBLISHED]
  rows.append([f'**{label}**', 'n/a' if fid_value is None else f'{fid_value:.2f}',
               *(report.interval_text(result[key], fmt) for key, fmt in (
                   ('colorfulness_pred', '{:.2f}'), ('colorfulness_delta', '{:.2f}'),
                   ('psnr', '{:.2f}'), ('ssim', '{:.4f}')))])
  return [report.markdown_table(header, rows),
          f'Published rows: {SOURCE}. Ground-truth CF here: '
          f"{result['colorfulness_true']['value']:.2f} (the published rows imply "
          f'{GROUND_TRUTH_COLORFULNESS} on val5k).']
