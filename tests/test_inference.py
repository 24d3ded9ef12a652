"""The public API (colorjax.load) and the one evaluator, against what `run.py colorize`
writes: a notebook, a report and the command line see the same pixels."""

import dataclasses
import json

import jax
import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data
import skimage.metrics

import colorjax
from colorjax import (colorize, data, evaluate, evaluator, images, photo_eval, program,
                      train)
from colorjax.errors import UsageError
from colorjax.programs import zhang

import saved_runs  # tests/saved_runs.py

CROP = 32


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A zhang_softmax workdir (a tiny network, random weights) as a run leaves it."""
  root = tmp_path_factory.mktemp('zhang')
  config, state = saved_runs.zhang_smoke_run(
      root, {'width': '0.0625', 'data.crop': str(CROP)},
      lambda config: jax.jit(zhang.colorizer(config, root, program.Options()).init)(), 20)
  return root, config, state


def _photo():
  return images.resize_rgb(skimage.data.chelsea(), (CROP, CROP))


def test_evaluator_psnr_equals_the_psnr_of_the_file_colorize_writes(workdir, tmp_path):
  root, config, state = workdir
  photo = _photo()
  PIL.Image.fromarray(photo).save(tmp_path / 'cat.png')
  assert colorize.main([f'--workdir={root}', str(tmp_path / 'cat.png'),  # as evaluated:
                        f'--out={tmp_path / "out"}', f'--size={CROP}x{CROP}']) == 0
  written = np.asarray(PIL.Image.open(tmp_path / 'out' / 'cat.png'))
  file_psnr = skimage.metrics.peak_signal_noise_ratio(photo, written)

  trained = zhang.colorizer(config, root, program.Options())
  evaluate_batch = evaluator.colorization_evaluator(
      {'T=0.38': trained.predictor(state)})
  batch = {'rgb': np.stack([photo] * 4), 'mask': np.asarray([1.0, 0.0, 0.0, 0.0])}
  sums, _ = evaluate_batch(data.to_global(batch, train.data_mesh()), 0)
  metrics = evaluate.summarize({k: np.sum(v, axis=0) for k, v in sums['T=0.38'].items()})
  assert 15 < file_psnr < 45  # a colorization, neither gray nor the original
  assert abs(metrics['psnr'] - file_psnr) <= 0.05


def test_load_colorizes_an_array_as_the_command_line_writes_it(workdir, tmp_path):
  root, _, _ = workdir
  photo = images.resize_rgb(skimage.data.astronaut(), (45, 67))
  PIL.Image.fromarray(photo).save(tmp_path / 'astronaut.png')
  assert colorize.main([f'--workdir={root}', str(tmp_path / 'astronaut.png'),
                        f'--out={tmp_path / "out"}', '--temperature=0.5']) == 0
  written = np.asarray(PIL.Image.open(tmp_path / 'out' / 'astronaut.png'))
  c = colorjax.load(root, temperature=0.5)
  rgb = c(photo)
  assert rgb.dtype == np.uint8 and rgb.shape == photo.shape
  np.testing.assert_array_equal(rgb, written)
  gray = c(skimage.color.rgb2gray(photo))  # HxW float in [0, 1]
  assert gray.shape == photo.shape


def test_predict_ab_gives_ab_at_the_network_output_size(workdir):
  root, _, _ = workdir
  c = colorjax.load(root)
  lightness = np.random.default_rng(0).uniform(0, 100, (3, 64, 48)).astype(np.float32)
  ab = c.predict_ab(lightness)
  assert ab.shape == (3, 16, 12, 2)  # the Zhang network works at 1/4 resolution
  # Each image is coloured on its own: the same L alone gives the same ab.
  np.testing.assert_allclose(c.predict_ab(lightness[1:2])[0], ab[1], atol=1e-4)
  assert np.abs(ab).max() > 1  # colours, not gray


def test_load_names_a_missing_run_in_one_line(tmp_path):
  with pytest.raises(UsageError, match='holds no run'):
    colorjax.load(tmp_path)


def test_working_size_keeps_the_aspect_and_rounds_to_the_stride(workdir):
  root, config, _ = workdir
  trained = zhang.colorizer(config, root, program.Options())  # stride 8, short side 256
  assert trained.working_size(512, 768) == (256, 384)
  assert trained.working_size(333, 517) == (256, 400)  # 397.5 -> the nearest multiple of 8
  assert trained.working_size(333, 517, 128) == (128, 200)
  assert trained.working_size(333, 517, (250, 190)) == (248, 192)
  fixed = dataclasses.replace(trained, fixed_size=True)
  assert fixed.working_size(333, 517, 128) == trained.size


def test_size_changes_what_the_network_sees_not_the_output(workdir):
  root, _, _ = workdir
  photo = images.resize_rgb(skimage.data.astronaut(), (90, 140))
  small, large = colorjax.load(root, size=32)(photo), colorjax.load(root, size=96)(photo)
  assert small.shape == large.shape == photo.shape
  assert not np.array_equal(small, large)


def test_evaluate_scores_what_colorize_writes_with_baselines(workdir, tmp_path):
  root, _, _ = workdir
  folder = tmp_path / 'photos'
  folder.mkdir()
  for name, size in (('astronaut', (70, 100)), ('coffee', (90, 60)), ('chelsea', (64, 64))):
    PIL.Image.fromarray(images.resize_rgb(getattr(skimage.data, name)(), size)).save(
        folder / f'{name}.png')
  assert colorize.main([f'--workdir={root}', str(folder), f'--out={tmp_path / "out"}']) == 0
  (tmp_path / 'eval').mkdir()
  (tmp_path / 'eval' / 'report.md').write_text('a run report evaluate must not touch')
  assert photo_eval.main([f'--workdir={root}', str(folder), f'--out={tmp_path / "eval"}',
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
  for metrics in result.values():
    assert metrics['psnr']['low'] <= metrics['psnr']['value'] <= metrics['psnr']['high']
  report = (tmp_path / 'eval' / 'evaluation.md').read_text()
  assert '| model |' in report and '| gray |' in report and '[' in report
  assert (tmp_path / 'eval' / 'evaluation.png').stat().st_size > 0
