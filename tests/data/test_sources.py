"""Data sources: tfds (mock data, prepared without TensorFlow), folders, npz files, the bundled
photos; unusable data is one line."""

import hashlib
import struct
import zlib

import numpy as np
import PIL.Image
import pytest
import skimage.data

from colorjax import configs
from colorjax.data import images, pipeline, sources
from colorjax.errors import UsageError
from tests import commands


def _config(**overrides):
  return configs.data_config(**{'crop': 32, 'batch_size': 8, 'eval_batch_size': 4,
                                **overrides})


def _png_16_bit(rgb) -> bytes:
  """A 16-bit RGB PNG (Pillow writes none): signature, IHDR, one IDAT, IEND."""
  def chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data)))
  height, width = rgb.shape[:2]
  rows = b''.join(b'\x00' + row.astype('>u2').tobytes() for row in rgb)
  header = struct.pack('>IIBBBBB', width, height, 16, 2, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
          + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


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
  (root / 'deep16.png').write_bytes(_png_16_bit(deep))
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


def test_folder_files_over_the_pixel_budget_are_named_as_such_on_stderr(tmp_path, capsys,
                                                                       monkeypatch):
  count = _write_folder(tmp_path)
  monkeypatch.setattr(images, 'MAX_PIXELS', 5000)  # a.jpg, sub/b.png, d.webp are over it
  source = sources.load_source(_config(source=f'folder:{tmp_path}', val_percent=0), 'train')
  assert source.num_examples == count - 4 and len(source.skipped) == 4
  out, err = capsys.readouterr()
  assert out == ''
  over, unreadable = commands.shown(err)  # in the order of their first file
  assert 'skipped 1 file(s) of 8 in the train split, unreadable: ' in unreadable
  assert unreadable.endswith('corrupt.jpg')
  assert ('skipped 3 file(s) of 8 in the train split, over the 0.005-megapixel budget '
          '(colorjax.data.images.MAX_PIXELS): ') in over
  assert [name.rsplit('/', 1)[-1] for name in over.split(': ')[-1].split(', ')] == [
      'a.jpg', 'd.webp', 'b.png']
  monkeypatch.setattr(images, 'MAX_PIXELS', 10)
  with pytest.raises(UsageError, match=r'\(8 files; 7 over the 1e-05-megapixel budget .*; 1 '):
    sources.load_source(_config(source=f'folder:{tmp_path}', val_percent=0), 'train')


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
def test_training_on_a_folder_runs_on_the_lean_runtime(tmp_path):
  """Without the optional packages (tests/lean.py): a smoke run trains on a folder of JPEG
  and PNG photos, evaluates on its held-out files and reports; each missing package it would
  have used is one line of notice, once. (The end-to-end tests of tests/programs/ run every
  family on `samples` and `npz:` on the lean runtime too.)"""
  for file, name in zip(('a.png', 'b.jpg', 'c.png', 'd.jpg'), images.SAMPLE_PHOTOS):
    photo = images.resize_rgb(images.sample_photo(name), (48, 64))
    PIL.Image.fromarray(photo).save(tmp_path / file)  # a, d held out at 50%; b, c train
  result = commands.run_py(
      '--experiment=zhang_softmax:smoke', f'--workdir={tmp_path / "run"}',
      f'--config.data.source=folder:{tmp_path}', '--config.data.val_percent=50',
      '--config.num_steps=2', '--config.checkpoint_every=2', '--config.prior_batches=1',
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'held-out photos of' in (tmp_path / 'run' / 'report.md').read_text()
  notes = [line for line in commands.shown(result.stderr) if line.startswith('note: ')]
  assert sorted(notes) == [
      'note: simplejpeg is not installed: JPEGs decode with Pillow, in about twice the CPU '
      'time (pip install simplejpeg)',
      'note: tensorboardX is not installed: no TensorBoard event files (pip install '
      'tensorboardX)']
  assert 'Traceback' not in result.stderr


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
