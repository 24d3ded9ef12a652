"""The benchmark end to end: every table of its report, PyTorch's and tf.data's columns
measured in the same run."""

import pytest

from tests import commands


@pytest.mark.slow
def test_benchmark_writes_its_table(tmp_path):
  result = commands.run_py(
      '--experiment=benchmark', f'--workdir={tmp_path}', '--config.sizes=16x24',
      '--config.steps=2', '--config.repeats=1', '--config.pipeline_cases=24:16',
      '--config.pipeline_examples=8', '--config.pipeline_batch_size=4',
      '--config.pipeline_batches=2', '--config.families=unet:2',
      '--config.family_sizes=16', '--config.family_steps=1',  # each step: its tests
      '--config.lab_batch=2', '--config.lab_side=8', tensorflow=True)  # the tf.data column
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  assert '| 16x24 | taps |' in report and '| 16x24 | nhwc |' in report
  for record_format in ('array', 'png', 'jpeg'):
    assert f'| 24x24 | 16x16 | {record_format} |' in report
  unet_row = next(line for line in report.splitlines() if line.startswith('| unet | 16x16 | 2 |'))
  rate, tflops, mfu, torch_rate, ratio = unet_row.strip('| ').split(' | ')[-5:]
  assert float(tflops) > 0 and mfu == '-'  # XLA counts the FLOPs; no peak known on CPU
  # PyTorch measured in the same run (the cells are rounded: 1 decimal for images/s)
  assert float(ratio.rstrip('x')) == pytest.approx(float(rate) / float(torch_rate), rel=0.05)
  assert '| 2x8x8 |' in report  # rgb -> Lab against scikit-image
  for record_format in ('jpeg', 'png'):  # per core, colorjax against tf.data
    assert f'| 24x24 | 16x16 | {record_format} |' in report.split('per core')[1]
  assert '| 2,000,000 |' in report  # resume cost
