"""unet_portrait end to end: both tasks on an npz of photos, evaluated while training, with
the best checkpoint kept; each task's network colorizes."""

import json

import numpy as np
import pytest

from colorjax.data import images
from tests import commands


@pytest.mark.slow
def test_unet_portrait_smoke_compares_both_tasks(tmp_path):
  """On an npz of photos, as the PFCN portraits are stored."""
  photos = [images.resize_rgb(images.sample_photo(name), (40, 40))
            for name in images.SAMPLE_PHOTOS]
  np.savez(tmp_path / 'photos.npz', train_images=np.stack(photos[:5]),
           test_images=np.stack(photos[5:]))
  result = commands.run_py('--experiment=unet_portrait:smoke', f'--workdir={tmp_path}',
                           f'--config.data.source=npz:{tmp_path / "photos.npz"}',
                           '--config.num_steps=10', '--config.checkpoint_every=10',
                           '--config.data.crop=32', '--config.data.batch_size=4',
                           '--config.eval_every=5', '--config.best_metric=psnr')
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  assert '![eval curves](eval_curves.png)' in report  # evaluated while training
  for task in ('gray2rgb', 'l2ab'):
    rows = [json.loads(line) for line in (tmp_path / task / 'eval_metrics.jsonl').open()]
    assert [row['step'] for row in rows] == [5, 10] and all(row['psnr'] > 0 for row in rows)
    best = max(rows, key=lambda row: row['psnr'])['step']
    assert [p.name for p in (tmp_path / task / 'checkpoints_best').iterdir()] == [str(best)]
  assert '| gray -> RGB |' in report and '| L -> ab |' in report
  assert '| l2ab − gray2rgb |' in report and 'its test_images, never trained on' in report
  for output in ('samples.png', 'loss_curves.png', 'gray2rgb/metrics.jsonl',
                 'l2ab/metrics.jsonl'):
    assert (tmp_path / output).stat().st_size > 0
  # The run's default network (L -> ab), and a task's subfolder for that task's network.
  assert len(commands.colorize_a_photo(tmp_path, tmp_path / 'colorized_l2ab')) == 1
  assert len(commands.colorize_a_photo(tmp_path / 'gray2rgb', tmp_path / 'colorized')) == 1
