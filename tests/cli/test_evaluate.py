"""`run.py evaluate`: every photo scored as colorize writes it, beside the gray and mean-colour
baselines, with bootstrap intervals; the run's own report is never touched."""

import json
import pathlib

import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data
import skimage.metrics

from colorjax import inference
from colorjax.cli import colorize, evaluate as cli_evaluate
from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.eval import photos
from tests import commands


@pytest.mark.slow
def test_evaluate_scores_what_colorize_writes_with_baselines(zhang_run, tmp_path):
  root, _, _ = zhang_run
  folder = tmp_path / 'photos'
  folder.mkdir()
  for name, size in (('astronaut', (70, 100)), ('coffee', (90, 60)), ('chelsea', (64, 64))):
    PIL.Image.fromarray(images.resize_rgb(getattr(skimage.data, name)(), size)).save(
        folder / f'{name}.png')
  assert colorize.main([f'--workdir={root}', str(folder), f'--out={tmp_path / "out"}']) == 0
  (tmp_path / 'eval').mkdir()
  (tmp_path / 'eval' / 'report.md').write_text('a run report evaluate must not touch')
  assert cli_evaluate.main([f'--workdir={root}', str(folder), f'--out={tmp_path / "eval"}',
                          '--bootstrap=200']) == 0
  assert (tmp_path / 'eval' / 'report.md').read_text() == 'a run report evaluate must not touch'
  result = json.loads((tmp_path / 'eval' / 'evaluation.json').read_text())['metrics']
  assert set(result) == {'model', 'gray', 'mean ab'}  # samples: the training data is known
  files = sorted(folder.iterdir())
  psnr = lambda pred, true: skimage.metrics.peak_signal_noise_ratio(true, pred)
  written = [psnr(np.asarray(PIL.Image.open(tmp_path / 'out' / f.name)),
                  np.asarray(PIL.Image.open(f))) for f in files]
  assert abs(result['model']['psnr']['value'] - np.mean(written)) <= 0.05
  gray = []  # the gray baseline by scikit-image: the photo's L with a = b = 0
  for f in files:
    truth = np.asarray(PIL.Image.open(f))
    lab = skimage.color.rgb2lab(truth)
    lab[..., 1:] = 0
    gray.append(psnr(np.round(skimage.color.lab2rgb(lab) * 255).astype(np.uint8), truth))
  assert abs(result['gray']['psnr']['value'] - np.mean(gray)) <= 0.05
  for scored in result.values():
    assert scored['psnr']['low'] <= scored['psnr']['value'] <= scored['psnr']['high']
  report = (tmp_path / 'eval' / 'evaluation.md').read_text()
  assert '| model |' in report and '| gray |' in report and '[' in report
  assert (tmp_path / 'eval' / 'evaluation.png').stat().st_size > 0


def _photos(folder, **photos):
  folder.mkdir()
  for name, pixels in photos.items():
    PIL.Image.fromarray(pixels).save(folder / f'{name}.png')
  return folder


@pytest.mark.slow
def test_gray_photos_are_left_out_and_none_with_colour_is_refused(zhang_run, tmp_path, capsys,
                                                                   monkeypatch):
  root, _, _ = zhang_run
  monkeypatch.setattr(photos, 'training_mean_ab', lambda config, workdir: None)  # not tested
  gray = skimage.data.camera()[:40, :60]
  folder = _photos(tmp_path / 'gray', camera=gray, camera_rgb=np.stack([gray] * 3, -1))
  with pytest.raises(UsageError, match='2 gray photo.* and none with colour: pass colour'):
    cli_evaluate.main([f'--workdir={root}', str(folder), f'--out={tmp_path / "eval"}'])
  folder = _photos(tmp_path / 'mixed', camera=gray,
                   chelsea=images.resize_rgb(skimage.data.chelsea(), (40, 60)),
                   strip=np.full((3, 100000, 3), (200, 30, 30), np.uint8))  # over the budget
  assert cli_evaluate.main([f'--workdir={root}', str(folder), f'--out={tmp_path / "eval"}',
                            '--bootstrap=100']) == 0
  errors = capsys.readouterr().err
  assert 'left out 1 gray photo(s)' in errors and 'camera.png' in errors
  assert 'strip.png: its 3x100000 pixels would be seen at' in errors
  result = json.loads((tmp_path / 'eval' / 'evaluation.json').read_text())
  assert [pathlib.Path(name).name for name in result['photos']] == ['chelsea.png']
  assert result['metrics']['gray']['psnr']['value'] < 60  # not the capped 100 dB of a gray photo


@pytest.mark.slow
def test_the_figure_keeps_its_photos_at_display_size(zhang_run):
  """Its rows are kept until every photo is scored: at full size they would grow evaluate's
  memory with the photos'."""
  colorizer = inference.load(zhang_run[0])
  photo = images.resize_rgb(skimage.data.chelsea(), (600, 900))
  small = images.resize_rgb(skimage.data.coffee(), (40, 60))
  sums, rows, _ = photos.score(colorizer, [('chelsea', photo), ('coffee', small)])
  assert [[panel.shape for panel in row] for row in rows] == [
      [(341, 512, 3)] * 3, [(40, 60, 3)] * 3]
  np.testing.assert_array_equal(rows[0][1], images.resize_rgb(colorizer(photo), (341, 512)))
  np.testing.assert_array_equal(rows[1][2], small)
  model = photos.photo_sums(colorizer(photo), photo)  # the scores: at full size
  np.testing.assert_allclose(sums['model'][0]['psnr'], model['psnr'])


@pytest.mark.parametrize('bootstrap, message', [
    ('1000000000', '--bootstrap=1000000000: use 100 to 10000 resamples'),
    ('1e9', "invalid int value: '1e9'"),
])
def test_bootstrap_is_bounded_before_anything_runs(tmp_path, capsys, bootstrap, message):
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'evaluate', f'--workdir={tmp_path}', tmp_path, f'--bootstrap={bootstrap}'),
      message)


def test_a_size_over_the_working_side_cap_is_a_usage_error(tmp_path, capsys):
  commands.assert_one_line(*commands.run_in_process(
      capsys, 'evaluate', f'--workdir={tmp_path}', tmp_path, '--size=100000'),
      f"'100000': each side must be 1 to {images.MAX_WORKING_SIDE} pixels")


@pytest.mark.parametrize('source, message', [
    ('folder:/no/such/folder', 'pass --source=folder:PATH'),
    ('npz:/no/such.npz', 'pass --source=npz:PATH'),
    ('folder:$COLORJAX_TEST_UNSET', 'or pass --source=folder:PATH'),
])
def test_source_mistakes_name_the_source_flag(zhang_run, capsys, monkeypatch, source, message):
  monkeypatch.delenv('COLORJAX_TEST_UNSET', raising=False)
  code, stderr = commands.run_in_process(capsys, 'evaluate', f'--workdir={zhang_run[0]}',
                                         f'--source={source}')
  commands.assert_one_line(code, stderr, message)
  assert '--config.' not in stderr
