"""The command line: --list, --help, --print_config, --config=PATH.py, program names, the
real-photo variants' folder, resuming, and the `colorjax` command being `python run.py`."""

import json
import pathlib
import shutil
import subprocess
import sys
import tomllib

import PIL.Image
import pytest

from colorjax import configs
from colorjax.cli import main as cli
from colorjax.data import images
from colorjax.errors import UsageError
from tests import commands
from tests.commands import ROOT

SMALL = ['--config.image_scale=0.1', '--config.seeds=0,1,2,3', '--config.num_steps=20',
         '--config.steps_per_call=10', '--config.log_every=10', '--config.checkpoint_every=10']


def test_list_names_every_experiment_and_variant(capsys):
  assert cli.main(['--list']) == 0
  listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
  for name in configs.list_experiments():
    assert name in listed
    assert {f'{name}:{variant}' for variant in configs.variants(name)} <= listed
  assert {'zhang_softmax:smoke', 'yuv_gan:wgan', 'unet_portrait:l2ab'} <= listed


def test_help_names_the_experiments(capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main(['--help'])
  assert exit_.value.code == 0
  out = capsys.readouterr().out
  assert all(name in out for name in configs.list_experiments())


def test_print_config_shows_overrides_and_writes_nothing(capsys, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert cli.main(['--experiment=zhang_softmax:smoke', '--config.width=0.25',
                   '--print_config']) == 0
  out = capsys.readouterr().out
  assert 'width: 0.25' in out and 'program: zhang' in out
  assert not list(tmp_path.iterdir())


def test_a_config_module_outside_experiments_runs_with_its_variant(capsys, tmp_path):
  module = tmp_path / 'my_ablation.py'
  module.write_text(
      'from experiments import norm_ablation\n'
      "VARIANTS = ('short',)\n"
      'def get_config(variant=None):\n'
      '  config = norm_ablation.get_config()\n'
      "  config.num_steps = 300 if variant == 'short' else 900\n"
      '  return config\n')
  assert cli.main([f'--config={module}:short', '--print_config']) == 0
  assert 'num_steps: 300' in capsys.readouterr().out
  assert cli._load(cli._parse_args([f'--config={module}:short'])[0], {})[1] == pathlib.Path(
      'runs', 'my_ablation', 'short')
  with pytest.raises(UsageError, match="has no variant 'long'"):
    cli.main([f'--config={module}:long', '--print_config'])
  with pytest.raises(UsageError, match='no config module'):
    cli.main([f'--config={tmp_path / "missing.py"}'])
  with pytest.raises(UsageError, match='pass one of --experiment'):
    cli.main([f'--config={module}', '--experiment=norm_ablation'])


def test_an_unknown_program_is_refused_before_anything_is_written(tmp_path):
  with pytest.raises(UsageError, match="'train' names no program"):
    cli.main(['--experiment=norm_ablation', '--config.program=train',
              f'--workdir={tmp_path / "w"}'])
  assert not (tmp_path / 'w').exists()


@pytest.mark.slow
def test_the_colorjax_command_is_run_py():
  scripts = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']
  assert scripts == {'colorjax': 'colorjax.cli.main:run'}
  command = shutil.which('colorjax', path=str(pathlib.Path(sys.executable).parent))
  if command is None:
    pytest.skip('colorjax is not installed here (pip install -e .)')
  listed = [subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
            for argv in ([command, '--list'], [sys.executable, 'run.py', '--list'])]
  assert listed[0].returncode == 0 and listed[0].stdout == listed[1].stdout


@pytest.mark.slow
def test_the_real_photo_variants_read_their_folder_from_the_environment(tmp_path, monkeypatch):
  """bsds300 reads $COLORJAX_BSDS300: unset, it is one line naming the variable, and nothing
  is written; set, the report names the folder's held-out photos."""
  monkeypatch.delenv('COLORJAX_BSDS300', raising=False)
  with pytest.raises(UsageError, match=r'names \$COLORJAX_BSDS300, which is not set'):
    cli.main(['--experiment=zhang_regression:bsds300', f'--workdir={tmp_path / "none"}'])
  assert not (tmp_path / 'none').exists()
  photos = tmp_path / 'photos'
  photos.mkdir()
  for i, name in enumerate(images.SAMPLE_PHOTOS * 2):
    PIL.Image.fromarray(images.sample_photo(name)[:120, :160]).save(photos / f'{i}.jpg')
  monkeypatch.setenv('COLORJAX_BSDS300', str(photos))
  cli.main(['--experiment=zhang_regression:bsds300', f'--workdir={tmp_path / "run"}',
            '--config.data.val_percent=30', '--config.data.crop=32', '--config.data.batch_size=4',
            '--config.data.eval_batch_size=4', '--config.num_steps=2', '--config.log_every=1'])
  report = (tmp_path / 'run' / 'report.md').read_text()
  assert f'held-out photos of `{photos}`' in report


@pytest.mark.slow
def test_resuming_with_another_config_is_refused_and_damages_nothing(tmp_path):
  assert commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}',
                         *SMALL).returncode == 0
  before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  result = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL,
                           '--config.channels=8')
  assert result.returncode == 2 and 'channels differ' in result.stderr
  assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == before
  # A run saved before a field existed (compute_dtype) resumes at the field's default.
  saved = json.loads((tmp_path / 'config.json').read_text())
  (tmp_path / 'config.json').write_text(json.dumps({k: v for k, v in saved.items()
                                                    if k != 'compute_dtype'}))
  assert commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}',
                         *SMALL).returncode == 0
  # A run whose config names a field this colorjax dropped (data.shuffle_buffer, say).
  (tmp_path / 'config.json').write_text(json.dumps({**saved, 'shuffle_buffer': 2048}))
  result = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert result.returncode == 2 and 'shuffle_buffer no longer exist' in result.stderr


@pytest.mark.slow
def test_a_corrected_command_runs_after_a_failed_one(tmp_path):
  failed = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL,
                           '--config.schemes=unit,bogus')
  assert failed.returncode == 2
  fixed = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL,
                          '--config.schemes=unit,none')
  assert fixed.returncode == 0, fixed.stderr
