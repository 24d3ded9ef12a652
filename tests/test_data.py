"""Input pipelines: every source, determinism, resume, process shares, eval padding, sharding."""

import hashlib
import subprocess
import pathlib
import time

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from colorjax import configs, data, images, train
from colorjax.errors import UsageError

import without_tensorflow  # tests/without_tensorflow.py

TFDS_NAMES = ('stl10', 'oxford_flowers102', 'imagenet2012', 'imagenette',
              'imagenet_resized/64x64', 'places365_small')


def _config(**overrides):
  return configs.data_config(**{'crop': 32, 'batch_size': 8, 'eval_batch_size': 4,
                                **overrides})


@pytest.mark.parametrize('name', TFDS_NAMES)
def test_tfds_sources_under_mock_data(name):
  config = _config(source=name)
  mesh = train.data_mesh()
  with tfds.testing.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
    source = data.load_source(config, 'train')
    host = next(data.train_batches(source, config))
    evaluation = data.load_source(config, 'eval')
    num_batches = data.num_eval_batches(evaluation.num_examples, 4)
    eval_batch = next(data.eval_batches(evaluation, config, num_batches))
  assert host['rgb'].shape == (8, 32, 32, 3) and host['rgb'].dtype == np.uint8
  assert host['rgb'].max() > 0 and host['label'].dtype == np.int32
  assert eval_batch['rgb'].shape == (4, 32, 32, 3)
  batch = data.to_global(host, mesh)
  assert batch['rgb'].shape == (8, 32, 32, 3)
  assert len(batch['rgb'].addressable_shards) == 4
  assert {s.data.shape for s in batch['rgb'].addressable_shards} == {(2, 32, 32, 3)}
  np.testing.assert_array_equal(np.asarray(batch['rgb']), host['rgb'])


def test_unavailable_tfds_dataset_is_a_clear_error(tmp_path):
  config = _config(source='imagenette', tfds_data_dir=str(tmp_path), download=False)
  with pytest.raises(UsageError, match=r"'imagenette' is not available.*tfds looks in.*"
                                       r'source=samples'):
    data.load_source(config, 'train')
  manual = _config(source='imagenet2012', tfds_data_dir=str(tmp_path))
  with pytest.raises(UsageError, match="'imagenet2012' is not available: it needs a manual"):
    data.load_source(manual, 'train')
  with pytest.raises(UsageError, match="unknown data source 'no_such_dataset'"):
    data.load_source(_config(source='no_such_dataset'), 'train')


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


def _all_files(root, gray='weight'):
  train_part = data.load_source(_config(source=f'folder:{root}', gray=gray), 'train')
  eval_part = data.load_source(_config(source=f'folder:{root}', gray=gray), 'eval')
  return train_part, eval_part


def test_folder_source_handles_every_kind_of_file_and_counts_the_corrupt_one(tmp_path):
  count = _write_folder(tmp_path)
  config = _config(source=f'folder:{tmp_path}', val_percent=0)
  source = data.load_source(config, 'train')
  assert source.num_examples == count - 1
  assert len(source.skipped) == 1 and source.skipped[0].endswith('corrupt.jpg')
  batch = next(data.train_batches(source, config))
  assert batch['rgb'].shape == (8, 32, 32, 3) and batch['rgb'].dtype == np.uint8
  evaluation = list(data.eval_batches(source, config, 2))
  assert sum(int(b['mask'].sum()) for b in evaluation) == count - 1


def test_folder_split_is_deterministic_and_disjoint(tmp_path):
  count = _write_folder(tmp_path)
  train_part, eval_part = (data.load_source(_config(source=f'folder:{tmp_path}',
                                                    val_percent=50), split)
                           for split in ('train', 'eval'))
  train_files, eval_files = _image_digests(train_part), _image_digests(eval_part)
  assert not train_files & eval_files
  assert len(train_files) + len(eval_files) + 1 == count  # + the corrupt one
  again = data.load_source(_config(source=f'folder:{tmp_path}', val_percent=50), 'train')
  assert _image_digests(again) == train_files


def _image_digests(source):
  return {hashlib.sha256(source[i]['image'].tobytes()).hexdigest() for i in range(len(source))}


def test_gray_images_can_be_dropped(tmp_path):
  _write_folder(tmp_path)
  keep = data.load_source(_config(source=f'folder:{tmp_path}', val_percent=0), 'train')
  drop = data.load_source(_config(source=f'folder:{tmp_path}', val_percent=0, gray='drop'),
                          'train')
  assert drop.num_examples == keep.num_examples - 1
  with pytest.raises(UsageError, match='tfds sources use'):
    data.load_source(_config(source='stl10', gray='drop'), 'train')


def test_empty_folder_and_bad_npz_are_clear_errors(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UsageError, match='holds no images'):
    data.load_source(_config(source=f'folder:{tmp_path / "empty"}'), 'train')
  np.savez(tmp_path / 'wrong.npz', images=np.zeros((2, 8, 8, 3), np.uint8))
  with pytest.raises(UsageError, match="has no 'train_images' array"):
    data.load_source(_config(source=f'npz:{tmp_path / "wrong.npz"}'), 'train')
  with pytest.raises(UsageError, match='not found'):
    data.load_source(_config(source=f'npz:{tmp_path / "missing.npz"}'), 'train')


@pytest.mark.parametrize('dtype', [np.uint8, np.float32])
def test_npz_source_uint8_and_float_at_odd_sizes(tmp_path, dtype):
  photo = images.sample_photo('astronaut')
  crops = np.stack([photo[i * 25:i * 25 + 100, i * 25:i * 25 + 75] for i in range(15)])
  train_images, test_images = crops[:10], crops[10:]
  scale = 255.0 if dtype == np.float32 else 1
  np.savez(tmp_path / 'p.npz', train_images=(train_images / scale).astype(dtype),
           test_images=(test_images / scale).astype(dtype))
  config = _config(source=f'npz:{tmp_path / "p.npz"}', crop=64, eval_batch_size=2)
  batch = next(data.train_batches(data.load_source(config, 'train'), config))
  assert batch['rgb'].shape == (8, 64, 64, 3) and batch['rgb'].dtype == np.uint8
  evaluation = data.load_source(config, 'eval')
  batches = list(data.eval_batches(evaluation, config, data.num_eval_batches(5, 2)))
  real = np.concatenate([b['rgb'][b['mask'] > 0] for b in batches])
  # 100x75 -> short side 64: ceil(100 * 64 / 75) = 86 rows; the centre crop is rows 11..74
  expected = np.stack([images.resize_rgb(im, (86, 64))[11:75] for im in test_images])
  assert real.shape == (5, 64, 64, 3)
  assert np.abs(real.astype(float) - expected).mean() < 3.0  # two resize implementations


def _first_batches(config, count, start_step=0):
  iterator = data.train_batches(data.load_source(config, 'train'), config, start_step)
  return [next(iterator)['rgb'] for _ in range(count)]


def test_same_seed_same_batches_other_seed_other_batches():
  config = _config()
  first, again = _first_batches(config, 3), _first_batches(config, 3)
  assert all(np.array_equal(a, b) for a, b in zip(first, again))
  other = _first_batches(_config(seed=1), 3)
  assert not np.array_equal(first[0], other[0])


def test_resume_from_step_k_reproduces_batches_k_and_k_plus_1():
  config = _config()
  unbroken = _first_batches(config, 7)  # several epochs of the 7 sample photos
  resumed = _first_batches(config, 2, start_step=5)
  assert np.array_equal(resumed[0], unbroken[5]) and np.array_equal(resumed[1], unbroken[6])


def test_every_epoch_is_a_permutation_and_epochs_differ():
  config = _config(batch_size=7)  # one batch = one epoch of the 7 sample photos
  source = data.load_source(config, 'train')
  iterator = data.train_batches(source, config)
  epochs = [next(iterator)['label'] for _ in range(3)]
  assert all(sorted(e) == list(range(7)) for e in epochs)
  assert len({tuple(e) for e in epochs}) > 1


def test_resuming_far_in_costs_about_what_starting_costs():
  """Resume is index maths: batch 2,000,000 is as quick to reach as batch 0."""
  source = data.load_source(_config(), 'train')

  def seconds_to_first_batches(start_step):
    start = time.perf_counter()
    iterator = data.train_batches(source, _config(), start_step)
    for _ in range(3):
      next(iterator)
    return time.perf_counter() - start

  seconds_to_first_batches(0)  # warm-up: thread pool, imports
  at_zero = min(seconds_to_first_batches(0) for _ in range(3))
  far = min(seconds_to_first_batches(2_000_000) for _ in range(3))
  assert far < 3 * at_zero


def test_a_process_reads_only_the_records_of_its_rows(tmp_path):
  """Process 1 of 2 reads the records of rows 4..7 of batch 3 and of the batches it decodes
  ahead, none of process 0's (one epoch: distinct records for distinct rows)."""
  ahead = range(3, 3 + data.AHEAD + 1)
  count = 8 * (ahead.stop + 1)
  photos = np.random.default_rng(0).integers(0, 256, (count, 8, 8, 3), np.uint8)
  np.savez(tmp_path / 'p.npz', train_images=photos, test_images=photos[:1])
  config = _config(source=f'npz:{tmp_path / "p.npz"}', crop=8)
  source = data.load_source(config, 'train')
  read, reads = source.read, []
  source.read = lambda index, short_side: reads.append(index) or read(index, short_side)
  iterator = data.train_batches(source, config, 3, 1, 2)
  next(iterator)
  iterator.close()

  def records(first_row, steps):
    return {data._record(config.seed, k * 8 + j, count) for k in steps
            for j in range(first_row, first_row + 4)}

  assert records(4, [3]) <= set(reads) <= records(4, ahead)
  assert not set(reads) & records(0, ahead)


def test_source_reads_examples_by_index():
  source = data.load_source(_config(), 'eval')
  assert len(source) == len(images.SAMPLE_PHOTOS)
  np.testing.assert_array_equal(source[1]['image'], images.sample_photo('chelsea'))
  assert source[1]['label'] == 1
  with pytest.raises(IndexError):
    source[len(source)]


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
      capture_output=True, text=True, cwd=pathlib.Path(__file__).parent.parent, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'held-out photos of' in (tmp_path / 'run' / 'report.md').read_text()


class _TinyPhotos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A catalog-style tfds dataset of a few noise images, prepared offline."""
  name = 'colorjax_tiny_photos'
  VERSION = tfds.core.Version('1.0.0')

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


def test_prepared_tfds_dataset_reads_without_tensorflow(tmp_path):
  """A tfds dataset prepared in array_record trains and evaluates where TensorFlow is not
  installed (tfds and etils ask importlib whether it is, so it is hidden from every finder)."""
  _TinyPhotos(data_dir=str(tmp_path), file_format='array_record').download_and_prepare()
  script = f"""
from colorjax import configs, data
config = configs.data_config(source='colorjax_tiny_photos', tfds_data_dir={str(tmp_path)!r},
                             crop=16, batch_size=4, eval_batch_size=4, download=False)
train = data.load_source(config, 'train')
batch = next(data.train_batches(train, config, 0, 0, 1))
evaluation = data.load_source(config, 'eval')
eval_batch = next(data.eval_batches(evaluation, config, 1, 0, 1))
assert 'tensorflow' not in sys.modules
print(len(train), len(evaluation), batch['rgb'].shape, eval_batch['mask'].tolist())
"""
  result = subprocess.run(without_tensorflow.python(script), capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parent.parent, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split('\n')[-2] == '6 3 (4, 16, 16, 3) [1.0, 1.0, 1.0, 0.0]'


def test_a_tfds_dataset_prepared_as_tfrecord_is_to_be_prepared_again(tmp_path):
  _TinyPhotos(data_dir=str(tmp_path), file_format='tfrecord').download_and_prepare()
  config = _config(source='colorjax_tiny_photos', tfds_data_dir=str(tmp_path), download=False)
  with pytest.raises(UsageError, match="delete its TFRecord copy.*prepare it again in the "
                                       "array_record format: python -c"):
    data.load_source(config, 'train')


def _process_batches(config, process_count, count, start_step=0):
  """Batches 0..count-1 of each of `process_count` (faked) processes."""
  source = data.load_source(config, 'train')
  iterators = [data.train_batches(source, config, start_step, index, process_count)
               for index in range(process_count)]
  return [[next(it) for _ in range(count)] for it in iterators]


@pytest.mark.parametrize('process_count', [2, 4])
def test_processes_hold_disjoint_shares_of_the_same_global_batches(process_count):
  config = _config()
  (alone,) = _process_batches(config, 1, 3)
  shares = _process_batches(config, process_count, 3)
  for k in range(3):
    for key in ('rgb', 'label'):
      joined = np.concatenate([shares[p][k][key] for p in range(process_count)])
      np.testing.assert_array_equal(joined, alone[k][key])  # in to_global's row order
  # ... and after a resume, in every process.
  resumed = _process_batches(config, process_count, 1, start_step=2)
  for p in range(process_count):
    np.testing.assert_array_equal(resumed[p][0]['rgb'], shares[p][2]['rgb'])


def test_per_process_batch_is_the_global_batch_over_the_processes():
  source = data.load_source(_config(), 'train')
  assert next(data.train_batches(source, _config(), 0, 1, 2))['rgb'].shape[0] == 4
  with pytest.raises(UsageError, match='must divide evenly over 3 processes'):
    data.train_batches(source, _config(), 0, 0, 3)


def test_eval_shares_count_every_example_once_in_single_process_order():
  config = _config(eval_batch_size=4)
  source = data.load_source(config, 'eval')
  num_batches = data.num_eval_batches(len(images.SAMPLE_PHOTOS), 4)  # 7 photos: 2 batches
  alone = list(data.eval_batches(source, config, num_batches, 0, 1))
  shares = [list(data.eval_batches(source, config, num_batches, index, 2)) for index in (0, 1)]
  assert [len(s) for s in shares] == [num_batches] * 2  # the same count in every process
  for k in range(num_batches):
    for key in ('rgb', 'label', 'mask'):
      np.testing.assert_array_equal(
          np.concatenate([shares[0][k][key], shares[1][k][key]]), alone[k][key])
  seen = [int(label) for b in alone for label, m in zip(b['label'], b['mask']) if m]
  assert sorted(seen) == list(range(len(images.SAMPLE_PHOTOS)))


def test_prefetch_to_device_keeps_order():
  host = [{'rgb': np.full((4, 2, 2, 3), i, np.uint8)} for i in range(5)]
  out = [int(b['rgb'][0, 0, 0, 0]) for b in data.prefetch_to_device(iter(host), train.data_mesh())]
  assert out == list(range(5))


def test_train_short_side_shows_the_scene_at_the_eval_scale(tmp_path):
  """A 64x128 image of two halves (red | blue). Resized to short side 16 first (16x32), a
  16x16 training crop shows one colour only at 2 of its 17 offsets; from the original, at 97
  of 113 (a patch of one half, 4x closer than the eval centre crop sees it)."""
  image = np.zeros((64, 128, 3), np.uint8)
  image[:, :64] = (255, 0, 0)
  image[:, 64:] = (0, 0, 255)
  np.savez(tmp_path / 'halves.npz', train_images=image[None], test_images=image[None])

  def one_colour_share(short_side):
    config = _config(source=f'npz:{tmp_path / "halves.npz"}', crop=16, batch_size=64,
                     train_short_side=short_side)
    crops = next(data.train_batches(data.load_source(config, 'train'), config))['rgb']
    red_share = np.mean(crops[..., 0] > 127, axis=(1, 2))
    return np.mean((red_share == 0) | (red_share == 1))

  assert one_colour_share(16) < 0.3 and one_colour_share(0) > 0.7
  with pytest.raises(UsageError, match='train_short_side=8 must be 0'):
    data.check(_config(crop=16, train_short_side=8), 1)
