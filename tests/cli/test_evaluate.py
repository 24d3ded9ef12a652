"""`run.py evaluate`: every photo scored as colorize writes it, beside the gray and mean-colour
baselines, with bootstrap intervals; the run's own report is never touched."""

import json

import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data
import skimage.metrics

from colorjax.cli import colorize, evaluate as cli_evaluate
from colorjax.data import images


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
