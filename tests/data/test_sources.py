"""Data sources: tfds (mock data, prepared without TensorFlow), folders, npz files, the bundled
photos; unusable data is one line."""

import hashlib
import subprocess

import numpy as np
import PIL.Image
import pytest
import skimage.data
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from colorjax import configs, mesh
from colorjax.data import images, pipeline, sources
from colorjax.errors import UsageError
from tests import commands, without_tensorflow

TFDS_NAMES = ('stl10', 'oxford_flowers102', 'imagenet2012', 'imagenette',
              'imagenet_resized/64x64', 'places365_small')


def _config(**overrides):
  return configs.data_config(**{'crop': 32, 'batch_size': 8, 'eval_batch_size': 4,
                                **overrides})


@pytest.mark.parametrize('name', TFDS_NAMES)
def test_tfds_sources_under_mock_data(name):
  config = _config(source=name)
  data_mesh = mesh.data_mesh()
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    source = sources.load_source(config, 'train')
    host = next(pipeline.train_batches(source, config))
    evaluation = sources.load_source(config, 'eval')
    num_batches = pipeline.num_eval_batches(evaluation.num_examples, 4)
    eval_batch = next(pipeline.eval_batches(evaluation, config, num_batches))
  assert host['rgb'].shape == (8, 32, 32, 3) and host['rgb'].dtype == np.uint8
  assert host['rgb'].max() > 0 and host['label'].dtype == np.int32
  assert eval_batch['rgb'].shape == (4, 32, 32, 3)
  batch = pipeline.to_global(host, data_mesh)
  assert batch['rgb'].shape == (8, 32, 32, 3)
  assert len(batch['rgb'].addressable_shards) == 4
  assert {s.data.shape for s in batch['rgb'].addressable_shards} == {(2, 32, 32, 3)}
  np.testing.assert_array_equal(np.asarray(batch['rgb']), host['rgb'])


def test_unavailable_tfds_dataset_is_a_clear_error(tmp_path):
  config = _config(source='imagenette', tfds_data_dir=str(tmp_path), download=False)
  with pytest.raises(UsageError, match=r"'imagenette' is not available.*tfds looks in.*"
                                       r'source=samples'):
    sources.load_source(config, 'train')
  manual = _config(source='imagenet2012', tfds_data_dir=str(tmp_path))
  with pytest.raises(UsageError, match="'imagenet2012' is not available: it needs a manual"):
    sources.load_source(manual, 'train')
  with pytest.raises(UsageError, match="unknown data source 'no_such_dataset'"):
    sources.load_source(_config(source='no_such_dataset'), 'train')


def _write_folder(root):
  photo = images.sample_photo('chelsea')
  (root / 'sub' / 'deeper').mkdir(parents=True)
  files = {
      'a.jpg': photo[:80, :90], 'sub/b.png': photo[50:150, 100:180],
      'sub/deeper/c.bmp': photo[100:160, :70], 'd.webp': photo[:64, 200:300],
  }
  for name, rgb in files.items():
    PIL.Image.fromarray(rgb).save(root / name)
  PIL.Image.fromarray(photo[:70, :70, 0]).save(root / 'gray.png')
  rgba = np.concatenate([photo[:60, :60], np.full((60, 60, 1), 128, np.uint8)], -1)
  PIL.Image.fromarray(rgba).save(root / 'sub' / 'rgba.png')
  deep = photo[:50, :66].astype(np.uint16) * 257
  (root / 'deep16.png').write_bytes(tf.io.encode_png(deep).numpy())
  (root / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff this is not a jpeg')
  (root / 'notes.txt').write_text('not an image')
  return 8  # image files, the corrupt one included


def test_folder_source_handles_every_kind_of_file_and_counts_the_corrupt_one(tmp_path):
  count = _write_folder(tmp_path)
  config = _config(source=f'folder:{tmp_path}', val_percent=0)
  source = sources.load_source(config, 'train')
  assert source.num_examples == count - 1
  assert len(source.skipped) == 1 and source.skipped[0].endswith('corrupt.jpg')
  batch = next(pipeline.train_batches(source, config))
  assert batch['rgb'].shape == (8, 32, 32, 3) and batch['rgb'].dtype == np.uint8
  evaluation = list(pipeline.eval_batches(source, config, 2))
  assert sum(int(b['mask'].sum()) for b in evaluation) == count - 1


def test_folder_split_is_deterministic_and_disjoint(tmp_path):
  count = _write_folder(tmp_path)
  train_part, eval_part = (sources.load_source(_config(source=f'folder:{tmp_path}',
                                                    val_percent=50), split)
                           for split in ('train', 'eval'))
  train_files, eval_files = _image_digests(train_part), _image_digests(eval_part)
  assert not train_files & eval_files
  assert len(train_files) + len(eval_files) + 1 == count  # + the corrupt one
  again = sources.load_source(_config(source=f'folder:{tmp_path}', val_percent=50), 'train')
  assert _image_digests(again) == train_files


def _image_digests(source):
  return {hashlib.sha256(source[i]['image'].tobytes()).hexdigest() for i in range(len(source))}


def test_gray_images_can_be_dropped(tmp_path):
  _write_folder(tmp_path)
  keep = sources.load_source(_config(source=f'folder:{tmp_path}', val_percent=0), 'train')
  drop = sources.load_source(_config(source=f'folder:{tmp_path}', val_percent=0, gray='drop'),
                          'train')
  assert drop.num_examples == keep.num_examples - 1
  with pytest.raises(UsageError, match='tfds sources use'):
    sources.load_source(_config(source='stl10', gray='drop'), 'train')


def test_empty_folder_and_bad_npz_are_clear_errors(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UsageError, match='holds no images'):
    sources.load_source(_config(source=f'folder:{tmp_path / "empty"}'), 'train')
  np.savez(tmp_path / 'wrong.npz', images=np.zeros((2, 8, 8, 3), np.uint8))
  with pytest.raises(UsageError, match="has no 'train_images' array"):
    sources.load_source(_config(source=f'npz:{tmp_path / "wrong.npz"}'), 'train')
  with pytest.raises(UsageError, match='not found'):
    sources.load_source(_config(source=f'npz:{tmp_path / "missing.npz"}'), 'train')


@pytest.mark.parametrize('dtype', [np.uint8, np.float32])
def test_npz_source_uint8_and_float_at_odd_sizes(tmp_path, dtype):
  photo = images.sample_photo('astronaut')
  crops = np.stack([photo[i * 25:i * 25 + 100, i * 25:i * 25 + 75] for i in range(15)])
  train_images, test_images = crops[:10], crops[10:]
  scale = 255.0 if dtype == np.float32 else 1
  np.savez(tmp_path / 'p.npz', train_images=(train_images / scale).astype(dtype),
           test_images=(test_images / scale).astype(dtype))
  config = _config(source=f'npz:{tmp_path / "p.npz"}', crop=64, eval_batch_size=2)
  batch = next(pipeline.train_batches(sources.load_source(config, 'train'), config))
  assert batch['rgb'].shape == (8, 64, 64, 3) and batch['rgb'].dtype == np.uint8
  evaluation = sources.load_source(config, 'eval')
  batches = list(pipeline.eval_batches(evaluation, config, pipeline.num_eval_batches(5, 2)))
  real = np.concatenate([b['rgb'][b['mask'] > 0] for b in batches])
  # 100x75 -> short side 64: ceil(100 * 64 / 75) = 86 rows; the centre crop is rows 11..74
  expected = np.stack([images.resize_rgb(im, (86, 64))[11:75] for im in test_images])
  assert real.shape == (5, 64, 64, 3)
  assert np.abs(real.astype(float) - expected).mean() < 3.0  # two resize implementations


def test_source_reads_examples_by_index():
  source = sources.load_source(_config(), 'eval')
  assert len(source) == len(images.SAMPLE_PHOTOS)
  np.testing.assert_array_equal(source[1]['image'], images.sample_photo('chelsea'))
  assert source[1]['label'] == 1
  with pytest.raises(IndexError):
    source[len(source)]


@pytest.mark.slow
def test_training_on_a_folder_never_imports_tensorflow(tmp_path):
  """TensorFlow not installed: a smoke run trains on a folder of JPEG and PNG photos,
  evaluates on its held-out files and reports (tests/test_run.py runs every family on
  `samples` and `npz:` without it too)."""
  for file, name in zip(('a.png', 'b.jpg', 'c.png', 'd.jpg'), images.SAMPLE_PHOTOS):
    photo = images.resize_rgb(images.sample_photo(name), (48, 64))
    PIL.Image.fromarray(photo).save(tmp_path / file)  # a, d held out at 50%; b, c train
  result = subprocess.run(without_tensorflow.run_py(
      '--experiment=zhang_softmax:smoke', f'--workdir={tmp_path / "run"}',
      f'--config.data.source=folder:{tmp_path}', '--config.data.val_percent=50',
      '--config.num_steps=2', '--config.checkpoint_every=2', '--config.prior_batches=1'),
      capture_output=True, text=True, cwd=commands.ROOT, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'held-out photos of' in (tmp_path / 'run' / 'report.md').read_text()


@pytest.mark.slow
class _TinyPhotos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A catalog-style tfds dataset of a few noise images, prepared offline."""
  name = 'colorjax_tiny_photos'
  VERSION = tfds.core.Version('1.0.0')

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    """This file. (tfds finds a builder's file through its package's resources, which needs
    importlib_resources for a builder defined in a test package.)"""
    return epath.Path(__file__)

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(None, None, 3)),
        'label': tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(6, 0), 'test': self._generate_examples(3, 1)}

  def _generate_examples(self, count, seed):
    rng = np.random.default_rng(seed)
    for i in range(count):
      yield i, {'image': rng.integers(0, 256, (20, 24, 3), np.uint8), 'label': i % 2}


@pytest.mark.slow
def test_prepared_tfds_dataset_reads_without_tensorflow(tmp_path):
  """A tfds dataset prepared in array_record trains and evaluates where TensorFlow is not
  installed (tfds and etils ask importlib whether it is, so it is hidden from every finder)."""
  _TinyPhotos(data_dir=str(tmp_path), file_format='array_record').download_and_prepare()
  script = f"""
from colorjax import configs
from colorjax.data import pipeline, sources
config = configs.data_config(source='colorjax_tiny_photos', tfds_data_dir={str(tmp_path)!r},
                             crop=16, batch_size=4, eval_batch_size=4, download=False)
train = sources.load_source(config, 'train')
batch = next(pipeline.train_batches(train, config, 0, 0, 1))
evaluation = sources.load_source(config, 'eval')
eval_batch = next(pipeline.eval_batches(evaluation, config, 1, 0, 1))
assert 'tensorflow' not in sys.modules
print(len(train), len(evaluation), batch['rgb'].shape, eval_batch['mask'].tolist())
"""
  result = subprocess.run(without_tensorflow.python(script), capture_output=True, text=True,
                          cwd=commands.ROOT, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split('\n')[-2] == '6 3 (4, 16, 16, 3) [1.0, 1.0, 1.0, 0.0]'


def test_a_tfds_dataset_prepared_as_tfrecord_is_to_be_prepared_again(tmp_path):
  _TinyPhotos(data_dir=str(tmp_path), file_format='tfrecord').download_and_prepare()
  config = _config(source='colorjax_tiny_photos', tfds_data_dir=str(tmp_path), download=False)
  with pytest.raises(UsageError, match="delete its TFRecord copy.*prepare it again in the "
                                       "array_record format: python -c"):
    sources.load_source(config, 'train')


def test_data_without_color_is_refused_before_training(tmp_path):
  folder = tmp_path / 'gray'
  folder.mkdir()
  for i in range(6):
    PIL.Image.fromarray(skimage.data.camera()[i * 40:i * 40 + 64, :64]).convert('RGB').save(
        folder / f'{i}.png')
  config = configs.data_config(source=f'folder:{folder}', val_percent=0, batch_size=4)
  with pytest.raises(UsageError, match='has colour'):
    sources.load_source(config, 'train')
  nan = np.full((4, 16, 16, 3), np.nan, np.float32)
  np.savez(tmp_path / 'nan.npz', train_images=nan, test_images=nan)
  with pytest.raises(UsageError, match='finite'):
    sources.load_source(configs.data_config(source=f'npz:{tmp_path / "nan.npz"}'), 'train')


def test_a_folder_named_by_a_variable_is_read_and_an_unset_one_is_one_line(tmp_path,
                                                                            monkeypatch):
  folder = tmp_path / 'photos'
  folder.mkdir()
  PIL.Image.fromarray(skimage.data.chelsea()).save(folder / 'cat.jpg')
  config = configs.data_config(source='folder:$PHOTOS_FOR_THIS_TEST', val_percent=0)
  monkeypatch.setenv('PHOTOS_FOR_THIS_TEST', str(folder))
  assert len(sources.load_source(config, 'train')) == 1
  monkeypatch.delenv('PHOTOS_FOR_THIS_TEST')
  with pytest.raises(UsageError, match=r'names \$PHOTOS_FOR_THIS_TEST, which is not set'):
    sources.check(config)
