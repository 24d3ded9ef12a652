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
      '--config.lab_batch=2', '--config.lab_side=8', lean_runtime=False)  # tf.data, PyTorch
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  assert '| 16x24 | taps |' in report and '| 16x24 | nhwc |' in report
  for record_format in ('array', 'png', 'jpeg'):
    assert f'| 24x24 | 16x16 | {record_format} |' in report
  unet_row = next(line for line in report.splitlines()
                  if line.startswith('| unet | 16x16 | 2 | float32 |'))
  rate, tflops, mfu, torch_rate, torch_mfu, ratio = unet_row.strip('| ').split(' | ')[-6:]
  assert float(tflops) > 0 and mfu == torch_mfu == '-'  # XLA counts FLOPs; CPU: no peak
  # PyTorch measured in the same run (the cells are rounded: 1 decimal for images/s)
  assert float(ratio.rstrip('x')) == pytest.approx(float(rate) / float(torch_rate), rel=0.05)
  assert '| 2x8x8 |' in report  # rgb -> Lab against scikit-image
  for record_format in ('jpeg', 'png'):  # per core, colorjax against tf.data
    assert f'| 24x24 | 16x16 | {record_format} |' in report.split('per core')[1]
  assert '| 2,000,000 |' in report  # resume cost


@pytest.mark.slow
def test_the_gpu_variant_on_a_cpu_times_both_dtypes_and_the_training_loop(tmp_path):
  """benchmark:gpu, shrunk: every family row in float32 and bfloat16 (PyTorch under bf16
  autocast), and run.py's loop training the full-width Zhang network against its step."""
  result = commands.run_py(
      '--experiment=benchmark:gpu', f'--workdir={tmp_path}', '--config.sizes=16x24',
      '--config.formulations=taps', '--config.steps=1', '--config.repeats=1',
      '--config.pipeline_cases=', '--config.families=zhang_softmax:4',
      '--config.family_sizes=16', '--config.family_steps=1', '--config.torch_compile=False',
      '--config.loop_steps=4', '--config.loop_source=samples', '--config.lab_batch=0',
      lean_runtime=False)
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  rows = {}
  for dtype in ('float32', 'bfloat16'):
    row = next(line for line in report.splitlines()
               if line.startswith(f'| zhang_softmax | 16x16 | 4 | {dtype} |'))
    rows[dtype] = row.strip('| ').split(' | ')
    assert float(rows[dtype][-3]) > 0  # PyTorch's images/s, under autocast for bfloat16
  loop_row = next(line for line in report.splitlines() if line.startswith('| 4 | bfloat16 |'))
  steps, dtype, loop_rate, step_rate, ratio = loop_row.strip('| ').split(' | ')
  assert step_rate == rows['bfloat16'][6] and float(loop_rate) > 0
  assert float(ratio) == pytest.approx(float(loop_rate) / float(step_rate), rel=0.05)
  assert (tmp_path / 'zhang_loop' / 'metrics.jsonl').exists()
