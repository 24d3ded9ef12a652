"""colorize: files of any format and size through a trained network and back at their own
size, with their own lightness. The network here is an initialized tiny CNN of the ablation
(its last layer scaled up, so it predicts vivid, often out-of-gamut colours); every family's
smoke-trained checkpoint is colorized in the end-to-end tests of tests/programs/."""

import errno
import json
import shutil
import sys
import threading
import types

import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data
import skimage.io

from colorjax import inference
from colorjax.cli import colorize, main
from colorjax.data import images
from colorjax.errors import UsageError
from tests import commands, saved_runs


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return saved_runs.ablation_run(tmp_path_factory.mktemp('run'))


def _lightness(rgb):
  """L by scikit-image of RGB as uint8, uint16 or gray."""
  rgb = np.asarray(rgb)
  if rgb.ndim == 2:
    rgb = skimage.color.gray2rgb(rgb)
  scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
  return skimage.color.rgb2lab(rgb[..., :3] / scale)[..., 0]


def _inputs(folder):
  """name -> the pixels written, in every format and layout colorize promises to read."""
  folder.mkdir()
  photo = images.resize_rgb(skimage.data.astronaut(), (333, 517))  # odd sizes
  part = (slice(60, 124), slice(200, 280))  # the other files share one size: one compile
  alpha = np.linspace(0, 255, 64 * 80).astype(np.uint8).reshape(64, 80, 1)
  written = {
      'odd.png': photo,
      'gray.jpg': skimage.data.camera()[part],
      'rgba.png': np.concatenate([skimage.data.coffee()[part], alpha], -1),
      'deep_gray.png': skimage.data.camera()[part].astype(np.uint16) * 257 + 100,
      'deep_rgb.tif': skimage.data.chelsea()[part].astype(np.uint16) * 257,
      'web.webp': photo[part],
      'bitmap.bmp': photo[part][::-1],
  }
  for name, pixels in written.items():
    skimage.io.imsave(folder / name, pixels, check_contrast=False)
  # What was stored: JPEG and WebP are lossy, so read the files back.
  return {name: skimage.io.imread(folder / name) for name in written}


def _colorize(workdir, *args):
  return colorize.main([f'--workdir={workdir}', *map(str, args)])


@pytest.mark.slow
def test_every_format_keeps_its_size_and_lightness(workdir, tmp_path):
  written = _inputs(tmp_path / 'in')
  out = tmp_path / 'out'
  assert _colorize(workdir, tmp_path / 'in', f'--out={out}', '--batch_size=3') == 0
  chroma = []
  for name, pixels in written.items():
    result = np.asarray(PIL.Image.open(out / f'{name.rsplit(".", 1)[0]}.png'))
    assert result.shape == (*pixels.shape[:2], 3) and result.dtype == np.uint8, name
    assert np.abs(_lightness(result) - _lightness(pixels)).max() <= 0.5, name
    chroma.append(np.hypot(*skimage.color.rgb2lab(result)[..., 1:].transpose(2, 0, 1)).mean())
  assert min(chroma) > 10  # vivid colours: the L check above is not a check on gray


@pytest.mark.slow
def test_compare_writes_input_output_and_original(workdir, tmp_path):
  photo = skimage.data.coffee()[:60, :90]
  skimage.io.imsave(tmp_path / 'coffee.png', photo)
  assert _colorize(workdir, tmp_path / 'coffee.png', f'--out={tmp_path / "out"}',
                   '--compare') == 0
  panel = skimage.io.imread(tmp_path / 'out' / 'coffee_compare.png')
  assert panel.shape[1] > 2.5 * panel.shape[0]  # three panels side by side


def test_a_corrupt_file_is_reported_and_the_others_are_written(workdir, tmp_path, capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  for name in ('a.png', 'c.png'):
    skimage.io.imsave(folder / name, skimage.data.chelsea()[:40, :40])
  (folder / 'b.png').write_bytes(b'\x89PNG not really')
  (folder / 'empty.jpg').write_bytes(b'')
  out = tmp_path / 'out'
  assert _colorize(workdir, folder, tmp_path / 'missing.png', f'--out={out}') == 1
  assert sorted(p.name for p in out.iterdir()) == ['a.png', 'c.png']
  errors = capsys.readouterr().err
  for name in ('b.png', 'empty.jpg', 'missing.png'):
    assert f'{name}: ' in errors


def test_a_write_that_fails_stops_colorize_with_its_error(workdir, tmp_path, monkeypatch):
  """Outputs are written on other threads while the network works on the next batch: a
  failed write (here the disk fills at the third) still ends the command with its error,
  which run.py prints as one line, and every file written before it is whole."""
  folder = tmp_path / 'in'
  folder.mkdir()
  for i in range(7):
    skimage.io.imsave(folder / f'{i}.png', skimage.data.chelsea()[:40, 8 * i:8 * i + 40])
  real_write, calls, lock = colorize._write, [], threading.Lock()

  def filling_disk(name, *args):
    with lock:
      calls.append(name)
      full = len(calls) >= 3
    if full:
      raise OSError(errno.ENOSPC, 'No space left on device', str(name))
    real_write(name, *args)

  monkeypatch.setattr(colorize, '_write', filling_disk)
  with pytest.raises(OSError) as error:
    _colorize(workdir, folder, f'--out={tmp_path / "out"}', '--batch_size=2')
  assert 'the disk is full' in main._storage_fault(error.value)
  written = sorted((tmp_path / 'out').iterdir())
  assert len(written) == 2
  for path in written:
    assert np.asarray(PIL.Image.open(path)).shape == (40, 40, 3)


def test_a_full_disk_under_colorize_is_one_line_that_promises_no_resume(
    workdir, tmp_path, capsys, monkeypatch):
  """colorize has no checkpoint to resume from: its line says to free space and run again."""
  folder = tmp_path / 'in'
  folder.mkdir()
  skimage.io.imsave(folder / 'a.png', skimage.data.chelsea()[:40, :40])

  def full(name, *args):
    raise OSError(errno.ENOSPC, 'No space left on device', str(name))

  monkeypatch.setattr(colorize, '_write', full)
  monkeypatch.setattr(main, '_leave', sys.exit)  # it would end this process with os._exit
  code, err = commands.run_in_process(capsys, 'colorize', f'--workdir={workdir}', folder,
                                      f'--out={tmp_path / "out"}')
  assert code == 2
  assert 'the disk is full' in err and 'checkpoint' not in err


class _FillingDisk:
  """A file on a disk with room for `room` bytes: a write past it stores what fits and fails
  as a full disk does, at once (`at_close` False) or when the buffer is flushed at close."""

  def __init__(self, path, mode, room, at_close):
    self.file, self.room, self.at_close, self.full = open(path, mode), room, at_close, False

  def write(self, data):
    if len(data) > self.room:
      self.file.write(data[:self.room])
      self.file.flush()
      self.full = True
      if not self.at_close:
        raise _disk_full()
    self.room -= len(data)
    return self.file.write(data) if not self.full else len(data)

  def close(self):
    self.file.close()
    if self.full and self.at_close:
      raise _disk_full()

  def __getattr__(self, name):
    return getattr(self.file, name)


def _disk_full():
  return OSError(errno.ENOSPC, 'No space left on device')


@pytest.mark.parametrize('existed, at_close', [(False, True), (True, False)])
def test_a_png_write_cut_by_a_full_disk_leaves_no_torn_file(tmp_path, monkeypatch, existed,
                                                            at_close):
  """Pillow removes a file it created when its encoder fails, not when the last buffered bytes
  fail at close, nor an older output it was overwriting."""
  name, photo = tmp_path / 'photo.png', skimage.data.chelsea()
  if existed:  # colorize run again into the same --out
    name.write_bytes(b'the earlier output')
  monkeypatch.setattr(PIL.Image, 'builtins', types.SimpleNamespace(
      open=lambda path, mode: _FillingDisk(path, mode, room=5000, at_close=at_close)))
  with pytest.raises(OSError, match='No space left'):
    colorize._write(name, photo, [photo], compare=False)
  assert [p.name for p in tmp_path.iterdir()] == (['photo.png'] if existed else [])
  if existed:
    assert name.read_bytes() == b'the earlier output'


@pytest.mark.slow
def test_photos_of_mixed_sizes_go_through_the_network_unpadded(workdir, tmp_path, monkeypatch):
  """Files are batched by working size; a group that does not fill a batch is split into
  powers of two (6 -> 4 + 2), so the network sees each photo once and no padding."""
  folder = tmp_path / 'in'
  folder.mkdir()
  for i in range(11):  # 7 of one size, 4 of another, interleaved
    size = (40, 56) if i % 3 else (56, 40)
    skimage.io.imsave(folder / f'{i:02d}.png', images.resize_rgb(skimage.data.chelsea(), size))
  batches = []
  real_predict = inference.Colorizer.predict_ab_batch

  def recording(self, l_nhw1, indices):
    batches.append(len(l_nhw1))
    return real_predict(self, l_nhw1, indices)

  monkeypatch.setattr(inference.Colorizer, 'predict_ab_batch', recording)
  assert _colorize(workdir, folder, f'--out={tmp_path / "out"}', '--batch_size=8') == 0
  assert sum(batches) == 11 and all(b in (8, 4, 2, 1) for b in batches), batches
  assert len(list((tmp_path / 'out').iterdir())) == 11


def test_same_stems_get_distinct_names_and_inputs_are_never_overwritten(workdir, tmp_path):
  for folder, name in (('a', 'x.png'), ('b', 'x.jpg')):
    (tmp_path / folder).mkdir()
    skimage.io.imsave(tmp_path / folder / name, skimage.data.chelsea()[:32, :32])
  assert _colorize(workdir, tmp_path / 'a', tmp_path / 'b', f'--out={tmp_path / "out"}') == 0
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['x.png', 'x_jpg.png']
  before = (tmp_path / 'a' / 'x.png').read_bytes()
  with pytest.raises(UsageError, match='would overwrite an input'):
    _colorize(workdir, tmp_path / 'a', f'--out={tmp_path / "a"}')
  assert (tmp_path / 'a' / 'x.png').read_bytes() == before


def test_workdir_mistakes_are_usage_errors(workdir, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # where the default --out would go
  photo = tmp_path / 'photo.png'
  skimage.io.imsave(photo, skimage.data.chelsea()[:32, :32])
  with pytest.raises(UsageError, match='holds no run'):
    _colorize(tmp_path / 'nothing', photo)
  no_checkpoint = tmp_path / 'fresh'
  no_checkpoint.mkdir()
  shutil.copy(workdir / 'config.json', no_checkpoint)
  with pytest.raises(UsageError, match='no checkpoint in'):
    _colorize(no_checkpoint, photo)
  other = tmp_path / 'other'
  shutil.copytree(workdir, other)
  config = json.loads((other / 'config.json').read_text())
  (other / 'config.json').write_text(json.dumps({**config, 'channels': 8}))
  with pytest.raises(UsageError, match='does not match the config.json'):
    _colorize(other, photo)
  with pytest.raises(UsageError, match='--temperature does not apply'):
    _colorize(workdir, photo, '--temperature=0.5')
  with pytest.raises(UsageError, match='this workdir holds none, unit'):
    _colorize(workdir, photo, '--network=bogus')
  assert not (tmp_path / 'colorized').exists()


def test_an_unwritable_output_folder_is_refused_before_inference(workdir, tmp_path):
  (tmp_path / 'a_file').write_text('')
  photo = tmp_path / 'photo.png'
  skimage.io.imsave(photo, skimage.data.chelsea()[:32, :32])
  with pytest.raises(UsageError, match='cannot write to --out='):
    _colorize(workdir, photo, f'--out={tmp_path / "a_file" / "out"}')


def test_output_names_skip_taken_stems(tmp_path):
  files = [tmp_path / 'a' / 'x.png', tmp_path / 'b' / 'x.png', tmp_path / 'c' / 'x.png']
  assert [p.name for p in colorize.output_names(files, tmp_path / 'out')] == [
      'x.png', 'x_png.png', 'x_2.png']


def test_files_over_the_memory_budget_are_skipped_in_one_line_each(workdir, tmp_path, capsys,
                                                                    monkeypatch):
  folder = tmp_path / 'in'
  folder.mkdir()
  PIL.Image.fromarray(skimage.data.chelsea()[:40, :40]).save(folder / 'fine.png')
  PIL.Image.fromarray(np.zeros((600, 600, 3), np.uint8)).save(folder / 'large.png')
  PIL.Image.fromarray(np.zeros((3, 100000, 3), np.uint8)).save(folder / 'strip.png')  # 1 KB
  monkeypatch.setattr(images, 'MAX_PIXELS', 350_000)  # the strip is within it
  resized = []
  resize = images.resize_rgb
  monkeypatch.setattr(images, 'resize_rgb', lambda rgb, size: resized.append(size) or
                      resize(rgb, size))
  out = tmp_path / 'out'
  assert _colorize(workdir, folder, f'--out={out}') == 1
  assert sorted(p.name for p in out.iterdir()) == ['fine.png']
  assert all(max(size) <= images.MAX_WORKING_SIDE for size in resized)
  errors = sorted(line for line in capsys.readouterr().err.splitlines()
                  if not line.startswith('colorize:') and line.strip())  # progress bars
  assert len(errors) == 2, errors
  assert 'large.png: 600x600 pixels is over the' in errors[0] and 'MAX_PIXELS' in errors[0]
  assert 'strip.png: its 3x100000 pixels would be seen at' in errors[1]


def test_a_size_over_the_working_side_cap_is_a_usage_error(workdir, tmp_path, capsys):
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'colorize', f'--workdir={workdir}', tmp_path, '--size=100000'),
      f"'100000': each side must be 1 to {images.MAX_WORKING_SIDE} pixels")
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'colorize', f'--workdir={workdir}', tmp_path, '--size=64x0'),
      "'64x0': each side must be 1 to")


def test_the_published_pipeline_is_refused_for_other_families(workdir, tmp_path, capsys):
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'colorize', f'--workdir={workdir}', tmp_path, '--pipeline=published'),
      '--pipeline=published does not apply to a norm_ablation run')
