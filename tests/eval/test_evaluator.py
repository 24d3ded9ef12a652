"""The evaluator scores what `run.py colorize` writes: a report's PSNR is the PSNR of the
file."""

import numpy as np
import PIL.Image
import pytest
import skimage.data
import skimage.metrics

from colorjax import families, mesh
from colorjax.cli import colorize
from colorjax.data import images, pipeline
from colorjax.eval import evaluator, metrics

CROP = 32


@pytest.mark.slow
def test_evaluator_psnr_equals_the_psnr_of_the_file_colorize_writes(zhang_run, tmp_path):
  root, config, state = zhang_run
  photo = images.resize_rgb(skimage.data.chelsea(), (CROP, CROP))
  PIL.Image.fromarray(photo).save(tmp_path / 'cat.png')
  assert colorize.main([f'--workdir={root}', str(tmp_path / 'cat.png'),  # as evaluated:
                        f'--out={tmp_path / "out"}', f'--size={CROP}x{CROP}']) == 0
  written = np.asarray(PIL.Image.open(tmp_path / 'out' / 'cat.png'))
  file_psnr = skimage.metrics.peak_signal_noise_ratio(photo, written)

  network = families.network_spec(config, root)
  predict_ab, variables = network.predictor(state)
  score = evaluator.colorization_scorer({'T=0.38': predict_ab})
  batch = {'rgb': np.stack([photo] * 4), 'mask': np.asarray([1.0, 0.0, 0.0, 0.0])}
  sums, _ = score({'T=0.38': variables}, pipeline.to_global(batch, mesh.data_mesh()), 0)
  scored = metrics.summarize({k: np.sum(v, axis=0) for k, v in sums['T=0.38'].items()})
  assert 15 < file_psnr < 45  # a colorization, neither gray nor the original
  assert abs(scored['psnr'] - file_psnr) <= 0.05
