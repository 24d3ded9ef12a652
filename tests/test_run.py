"""run.py end to end, in subprocesses as a user runs it."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data

from colorjax import colorize, images

import without_tensorflow  # tests/without_tensorflow.py

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMALL = ['--config.image_scale=0.1', '--config.seeds=0,1,2,3', '--config.num_steps=20',
         '--config.steps_per_call=10', '--config.log_every=10', '--config.checkpoint_every=10']


def _run(*args, tensorflow=False, **kwargs):
  """`python run.py *args` as a user runs it; TensorFlow is not installed unless asked for
  (run.py never needs it)."""
  command = [sys.executable, 'run.py', *args] if tensorflow else without_tensorflow.run_py(*args)
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                        **kwargs)


def _colorize_a_photo(workdir, out, *args):
  """Colorize an odd-sized photo with a run's checkpoint (in this process: no start-up);
  check that every output keeps its size and L; return them."""
  photo = images.resize_rgb(skimage.data.astronaut(), (45, 67))
  out.mkdir(parents=True)
  PIL.Image.fromarray(photo).save(out / 'photo.jpg', quality=95)
  photo = np.asarray(PIL.Image.open(out / 'photo.jpg'))
  assert colorize.main([f'--workdir={workdir}', str(out / 'photo.jpg'), f'--out={out}',
                        *args]) == 0
  outputs = [np.asarray(PIL.Image.open(p)) for p in sorted(out.glob('photo*.png'))]
  for output in outputs:
    assert output.shape == photo.shape
    lightness = [skimage.color.rgb2lab(x)[..., 0] for x in (output, photo)]
    assert np.abs(lightness[0] - lightness[1]).max() <= 0.5
  return outputs


def test_norm_ablation_writes_report_and_figures_and_is_not_retrained(tmp_path):
  result = _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  for scheme in ('none', 'unit', 'centered', 'pix2pix', 'shifted'):
    assert f'| `{scheme}` |' in report
  assert '| `unit` − `none` |' in report and 'paired bootstrap interval' in report
  for figure in ('reconstructions.png', 'loss_curves.png', 'config.json', 'metrics.jsonl'):
    assert (tmp_path / figure).stat().st_size > 0
  again = _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert again.returncode == 0 and 'already trained to step 20' in again.stdout
  assert len(_colorize_a_photo(tmp_path, tmp_path / 'colorized')) == 1


@pytest.mark.parametrize('args,message', [
    (['--experiment=norm_ablatoin'], "unknown experiment 'norm_ablatoin'"),
    (['--experiment=norm_ablation', '--config.num_step=5'], "unknown config key 'num_step'"),
    (['--experiment=norm_ablation', '--config.num_steps=many'], 'is not a valid int'),
    (['--experiment=norm_ablation', '--config.schemes=unit,bogus'], 'unknown normalization'),
    (['--experiment=norm_ablation', '--config.image=/no/such.png'], "image '/no/such.png' not"),
    (['--experiment=norm_ablation', '--config.num_steps=15'], 'multiple of steps_per_call'),
    (['--frobnicate'], "unrecognized argument '--frobnicate'"),
    (['--experiment=norm_ablation', '--config.program=train'], "'train' names no program"),
    (['--experiment=yuv_gan:smoke', '--config.data.crop=40'], 'must be a multiple of 16'),
    (['--experiment=yuv_gan:smoke', '--config.n_critic=3'], 'multiple of --config.n_critic=3'),
    (['--experiment=unet_portrait', '--config.data.source=npz:/no/pfcn_small.npz'],
     "portrait data '/no/pfcn_small.npz' not found: save the PFCN portraits"),
    (['--experiment=flowers_resnet:smoke', '--config.colorizer.data.crop=48'],
     'must be a multiple of 32'),
    (['--experiment=benchmark', '--config.families=unet:16,gan'],
     "entry 'gan' is not FAMILY:BATCH"),
    (['--experiment=benchmark', '--config.family_sizes=64,40'], 'must be a multiple of 16'),
    (['colorize', 'photo.png'], 'holds no run (no config.json)'),
    (['colorize', '--workdir=runs/x'], 'the following arguments are required: PATH'),
])
def test_user_mistakes_exit_2_with_one_line(tmp_path, args, message):
  result = _run(*args, f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], result.stderr
  assert not list(tmp_path.glob('w/checkpoints/*'))


def test_resuming_with_another_config_is_refused_and_damages_nothing(tmp_path):
  assert _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL).returncode == 0
  before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  result = _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL,
                '--config.channels=8')
  assert result.returncode == 2 and 'channels differ' in result.stderr
  assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == before
  # A run saved before a field existed (compute_dtype) resumes at the field's default.
  saved = json.loads((tmp_path / 'config.json').read_text())
  (tmp_path / 'config.json').write_text(json.dumps({k: v for k, v in saved.items()
                                                    if k != 'compute_dtype'}))
  assert _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL).returncode == 0
  # A run whose config names a field this colorjax dropped (data.shuffle_buffer, say).
  (tmp_path / 'config.json').write_text(json.dumps({**saved, 'shuffle_buffer': 2048}))
  result = _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert result.returncode == 2 and 'shuffle_buffer no longer exist' in result.stderr


def test_list_describes_experiments():
  result = _run('--list')
  assert result.returncode == 0 and 'norm_ablation' in result.stdout


def test_benchmark_writes_its_table(tmp_path):
  result = _run('--experiment=benchmark', f'--workdir={tmp_path}', '--config.sizes=16x24',
                '--config.steps=2', '--config.repeats=1', '--config.pipeline_cases=24:16',
                '--config.pipeline_examples=8', '--config.pipeline_batch_size=4',
                '--config.pipeline_batches=2', '--config.families=unet:2',
                '--config.family_sizes=16', '--config.family_steps=1',  # each step: its tests
                '--config.lab_batch=2', '--config.lab_side=8', tensorflow=True)  # tf.data column
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


def test_a_corrected_command_runs_after_a_failed_one(tmp_path):
  failed = _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL,
                '--config.schemes=unit,bogus')
  assert failed.returncode == 2
  fixed = _run('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL,
               '--config.schemes=unit,none')
  assert fixed.returncode == 0, fixed.stderr


ZHANG_SMOKE = ['--config.num_steps=10', '--config.checkpoint_every=10', '--config.log_every=10',
               '--config.prior_batches=2']


def test_zhang_smoke_runs_and_comparison(tmp_path):
  for head in ('softmax', 'regression'):
    result = _run(f'--experiment=zhang_{head}:smoke', f'--workdir={tmp_path / head}',
                  *ZHANG_SMOKE)
    assert result.returncode == 0, result.stderr
    report = (tmp_path / head / 'report.md').read_text()
    assert 'ab-std ratio' in report
    for output in ('samples.png', 'loss_curve.png', 'prior.npz', 'metrics_eval.json'):
      assert (tmp_path / head / output).stat().st_size > 0
  assert '| T=0.38 |' in (tmp_path / 'softmax' / 'report.md').read_text()
  for head, args in (('softmax', ['--temperature=0.5']), ('regression', [])):
    assert len(_colorize_a_photo(tmp_path / head, tmp_path / f'colorized_{head}', *args)) == 1
  compare = _run('--experiment=zhang_compare', f'--workdir={tmp_path / "compare"}',
                 f'--config.runs={tmp_path / "softmax"},{tmp_path / "regression"}')
  assert compare.returncode == 0, compare.stderr
  table = (tmp_path / 'compare' / 'report.md').read_text()
  assert '| regression |' in table and '| T=0.38 |' in table


def test_zhang_without_imagenet_names_the_alternatives(tmp_path):
  result = _run('--experiment=zhang_softmax', f'--workdir={tmp_path / "w"}',
                f'--config.data.tfds_data_dir={tmp_path / "tfds"}')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert 'imagenette' in lines[0] and 'samples' in lines[0]


def test_yuv_gan_smoke_writes_report_grid_and_curves(tmp_path):
  result = _run('--experiment=yuv_gan:smoke', f'--workdir={tmp_path}', '--config.num_steps=20',
                '--config.checkpoint_every=10')
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  assert '| diversity |' in report and '![samples](samples.png)' in report
  metrics = json.loads((tmp_path / 'metrics_eval.json').read_text())['generator']
  assert metrics['diversity'] > 0 and metrics['psnr'] > 0
  for output in ('samples.png', 'loss_curves.png'):
    assert (tmp_path / output).stat().st_size > 0
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [row['step'] for row in rows] == list(range(20))
  assert all(np.isfinite(row['d_loss']) and np.isfinite(row['g_loss']) for row in rows)
  seed_0 = _colorize_a_photo(tmp_path, tmp_path / 'seed_0', '--samples=2')
  seed_1 = _colorize_a_photo(tmp_path, tmp_path / 'seed_1', '--samples=2', '--seed=1')
  again = _colorize_a_photo(tmp_path, tmp_path / 'seed_0_again', '--samples=2')
  assert len(seed_0) == 2 and not np.array_equal(seed_0[0], seed_0[1])
  assert not np.array_equal(seed_0[0], seed_1[0])
  assert all(np.array_equal(a, b) for a, b in zip(seed_0, again))


def test_unet_portrait_smoke_compares_both_tasks(tmp_path):
  """On an npz of photos, as the PFCN portraits are stored."""
  photos = [images.resize_rgb(images.sample_photo(name), (40, 40))
            for name in images.SAMPLE_PHOTOS]
  np.savez(tmp_path / 'photos.npz', train_images=np.stack(photos[:5]),
           test_images=np.stack(photos[5:]))
  result = _run('--experiment=unet_portrait:smoke', f'--workdir={tmp_path}',
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
  assert len(_colorize_a_photo(tmp_path, tmp_path / 'colorized_l2ab')) == 1
  assert len(_colorize_a_photo(tmp_path / 'gray2rgb', tmp_path / 'colorized')) == 1


def test_flowers_resnet_smoke_runs_all_three_stages(tmp_path):
  steps = [f'--config.{stage}.{key}={value}' for stage in ('classifier', 'colorizer')
           for key, value in (('num_steps', 10), ('checkpoint_every', 10),
                              ('data.batch_size', 4))]
  result = _run('--experiment=flowers_resnet:smoke', f'--workdir={tmp_path}', *steps)
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  assert 'validation top-1 accuracy' in report
  assert '| pretrained |' in report and '| scratch |' in report
  metrics = json.loads((tmp_path / 'metrics_eval.json').read_text())
  assert 0.0 <= metrics['classifier_top1'] <= 1.0
  for stage in ('classifier', 'pretrained', 'scratch'):
    assert list((tmp_path / stage / 'checkpoints').glob('[0-9]*'))
  assert len(_colorize_a_photo(tmp_path, tmp_path / 'colorized')) == 1
