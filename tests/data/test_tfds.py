"""tfds sources: every dataset the experiments name under tfds's mock data, a dataset prepared
here offline and read without TensorFlow, the one-line answers for a dataset that is not
there, prepared in the wrong format, or asked for without tensorflow-datasets installed."""

import subprocess
import sys

import numpy as np
import pytest
from etils import epath

from colorjax import configs, mesh
from colorjax.data import pipeline, sources
from colorjax.errors import UsageError
from tests import commands, lean

tfds = pytest.importorskip('tensorflow_datasets')

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
  result = subprocess.run(lean.python(script, hidden=['tensorflow']), capture_output=True,
                          text=True,
                          cwd=commands.ROOT, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split('\n')[-2] == '6 3 (4, 16, 16, 3) [1.0, 1.0, 1.0, 0.0]'


def test_a_tfds_dataset_prepared_as_tfrecord_is_to_be_prepared_again(tmp_path):
  _TinyPhotos(data_dir=str(tmp_path), file_format='tfrecord').download_and_prepare()
  config = _config(source='colorjax_tiny_photos', tfds_data_dir=str(tmp_path), download=False)
  with pytest.raises(UsageError, match="delete its TFRecord copy.*prepare it again in the "
                                       "array_record format: python -c"):
    sources.load_source(config, 'train')


def test_a_tfds_source_without_tensorflow_datasets_is_one_line(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)  # `import` raises ImportError
  with pytest.raises(UsageError, match=r"'stl10' is a tfds dataset, which needs "
                                       r"tensorflow-datasets: pip install -e '\.\[tfds\]'"):
    sources.load_source(_config(source='stl10'), 'train')

