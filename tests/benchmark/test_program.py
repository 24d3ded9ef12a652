"""The benchmark end to end: every table of its report, PyTorch's and tf.data's columns
measured in the same run; the GPU variant, shrunk, on a machine without TensorFlow; and
what keeps that variant whole and within its time."""

import subprocess
import time

import pytest

from colorjax import configs
from colorjax.benchmark import family_steps, program
from colorjax.errors import UsageError
from tests import commands, lean


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
  rate, tflops, mfu, torch_rate, torch_mfu, ratio, _ = unet_row.strip('| ').split(' | ')[-7:]
  assert float(tflops) > 0 and mfu == torch_mfu == '-'  # XLA counts FLOPs; CPU: no peak
  # PyTorch measured in the same run (the cells are rounded: 1 decimal for images/s)
  assert float(ratio.rstrip('x')) == pytest.approx(float(rate) / float(torch_rate), rel=0.05)
  assert '| 2x8x8 |' in report  # rgb -> Lab against scikit-image
  for record_format in ('jpeg', 'png'):  # per core, colorjax against tf.data
    assert f'| 24x24 | 16x16 | {record_format} |' in report.split('per core')[1]
  assert '| 2,000,000 |' in report  # resume cost


def _printed_table(stdout) -> list[list[str]]:
  """The rows of the table the run printed last (its header and rule left out)."""
  lines = stdout.rstrip().splitlines()
  start = max(i for i, line in enumerate(lines) if not line.startswith('|')) + 1
  assert lines[start].startswith('| family |')
  return [line.strip('| ').split(' | ') for line in lines[start + 2:]]


@pytest.mark.slow
def test_the_gpu_variant_on_a_cpu_times_both_dtypes_and_the_training_loop(tmp_path):
  """benchmark:gpu, shrunk, without TensorFlow and tensorflow-datasets (as on the GPU
  machine): every family row in float32 and bfloat16 (PyTorch under bf16 autocast), and
  run.py's loop training the full-width Zhang network for about loop_seconds against its
  step and its input pipeline, all in the one table printed at the end."""
  command = lean.python('from colorjax.cli import main; main.run()',
                        hidden=('tensorflow', 'tensorflow_datasets'))
  result = subprocess.run(command + [
      '--experiment=benchmark:gpu', f'--workdir={tmp_path}', '--config.repeats=1',
      '--config.families=zhang_softmax:4', '--config.family_sizes=16',
      '--config.family_steps=1', '--config.torch_compile=False', '--config.loop_seconds=2',
      '--config.loop_source=samples', '--config.pipeline_batches=2'],
      cwd=commands.ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert 'tensorflow' not in result.stderr  # nothing asked for it (optional.load's note)
  rows = {tuple(row[:5]): row[5:] for row in _printed_table(result.stdout)}
  for family, batch, size in (('zhang_softmax', '4', '16x16'),):
    for dtype in ('float32', 'bfloat16'):
      rate, _, _ = rows[family, 'colorjax', dtype, batch, size]
      torch_rate, mfu, ratio = rows[family, 'PyTorch (eager)', dtype, batch, size]
      assert mfu == '-' and float(torch_rate) > 0  # under autocast for bfloat16; CPU: no peak
      assert float(ratio.split()[1].rstrip('x')) == pytest.approx(
          float(rate) / float(torch_rate), rel=0.05)
  step_rate = float(rows['zhang_softmax', 'colorjax', 'bfloat16', '4', '16x16'][0])
  loop_rate, _, note = rows['zhang_softmax', 'colorjax run.py loop', 'bfloat16', '4', '16x16']
  pipeline_rate = float(rows['zhang_softmax', 'colorjax input pipeline', '-', '4', '16x16'][0])
  ratio, steps = note.split('x the step; ')
  assert float(ratio) == pytest.approx(float(loop_rate) / step_rate, rel=0.05)
  steps = int(steps.split()[0])
  expected = 2 * min(step_rate, pipeline_rate) / 4  # 2 s at the slower of the two, batches of 4
  assert max(program.LOOP_MIN_STEPS, round(0.9 * expected)) <= steps
  assert steps <= max(program.LOOP_MIN_STEPS, round(1.1 * expected))
  assert len(rows) == 2 * 2 + 2
  report = (tmp_path / 'report.md').read_text()
  assert '| zhang_softmax | 16x16 | 4 | bfloat16 |' in report and 'loop / step' in report
  assert (tmp_path / 'zhang_loop' / 'metrics.jsonl').exists()


@pytest.mark.slow
def test_a_failed_torch_compile_costs_its_cell_not_the_run(monkeypatch, capsys):
  """As inductor fails (no C++ compiler, an unsupported op): at the compiled network's
  first call. The run goes on: colorjax's figures and the rest of the table."""
  torch = pytest.importorskip('torch')

  class Uncompilable(torch.nn.Module):
    def __init__(self, network):
      super().__init__()
      self.network = network

    def forward(self, *inputs):
      raise RuntimeError('no working C++ compiler')

  monkeypatch.setattr(torch, 'compile', Uncompilable)
  config = configs.load_config('benchmark:gpu')
  config.update(families=('zhang_regression:1',), family_sizes=(16,), family_steps=1,
                repeats=1, compute_dtypes=('float32',))
  rows, _ = program.family_rows(config, None)
  assert 'no working C++ compiler' in capsys.readouterr().err
  colorjax_row, torch_row = program.summary_rows(rows, None, None, torch_compile=True)
  assert float(colorjax_row[5]) > 0
  assert torch_row[1:] == ['PyTorch (torch.compile)', 'float32', 1, '16x16',
                           'failed (RuntimeError)', '-', '-']


def test_the_time_limit_shortens_the_loop_to_end_before_it():
  config = configs.load_config('benchmark:gpu')
  assert (config.loop_seconds, config.time_limit_s) == (180, 480)
  timing = family_steps.StepTiming(init_s=5.0, compile_s=20.0, images_per_second=1e3, flops=None)
  step = program.FamilyRow('zhang_softmax', 176, 40, 'bfloat16', timing, None)
  now = time.perf_counter()
  assert program.loop_seconds(config, step, now) == 180  # time enough
  left = 480 - 350 - 25 - program.LOOP_OVERHEAD_S
  assert program.loop_seconds(config, step, now - 350) == pytest.approx(left, abs=1)
  assert program.loop_seconds(config, step, now - 480) == 0  # the loop's fewest steps
  config.time_limit_s = 0.0
  assert program.loop_seconds(config, step, now - 1e4) == 180


def test_the_loop_source_is_named_as_the_benchmark_names_it(tmp_path):
  config = configs.load_config('benchmark:gpu')
  config.loop_source = f'folder:{tmp_path}/none'
  with pytest.raises(UsageError, match='pass --config.loop_source=folder:PATH'):
    program.check(config)


def test_a_family_entry_may_give_its_own_side():
  config = configs.load_config('benchmark')
  config.update(families=('unet:2', 'flowers_resnet:4:96'), family_sizes=(32, 48))
  assert program._family_cases(config) == [('unet', 2, 32), ('unet', 2, 48),
                                           ('flowers_resnet', 4, 96)]
  config.families = ('flowers_resnet:4',)
  with pytest.raises(UsageError, match='flowers_resnet at 48x48 .* multiple of 32'):
    program._family_cases(config)
  for entry in ('gan', 'gan:0', 'gan:4:32:1'):
    config.families = (entry,)
    with pytest.raises(UsageError, match=f"entry '{entry}' is not FAMILY:BATCH"):
      program._family_cases(config)
