"""The command line in-process: --list, --help, --print_config, --config=PATH.py, program
names, and the `colorjax` command (subprocess) being `python run.py`."""

import pathlib
import shutil
import subprocess
import sys
import tomllib

import PIL.Image
import pytest

from colorjax import cli, configs, images
from colorjax.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parent.parent


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


def test_the_colorjax_command_is_run_py():
  scripts = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['scripts']
  assert scripts == {'colorjax': 'colorjax.cli:run'}
  command = shutil.which('colorjax', path=str(pathlib.Path(sys.executable).parent))
  if command is None:
    pytest.skip('colorjax is not installed here (pip install -e .)')
  listed = [subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
            for argv in ([command, '--list'], [sys.executable, 'run.py', '--list'])]
  assert listed[0].returncode == 0 and listed[0].stdout == listed[1].stdout


def test_the_real_photo_variants_need_their_folder_and_report_held_out_photos(
    tmp_path, monkeypatch):
  """bsds300 reads ../shared/data/bsds300 from where run.py is started: elsewhere it is one
  line naming the folder; on a folder of photos the report names them as held out."""
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UsageError, match="folder '../shared/data/bsds300' not found"):
    cli.main(['--experiment=zhang_regression:bsds300', f'--workdir={tmp_path / "none"}'])
  photos = tmp_path / 'photos'
  photos.mkdir()
  for i, name in enumerate(images.SAMPLE_PHOTOS * 2):
    PIL.Image.fromarray(images.sample_photo(name)[:120, :160]).save(photos / f'{i}.jpg')
  cli.main(['--experiment=zhang_regression:bsds300', f'--workdir={tmp_path / "run"}',
            f'--config.data.source=folder:{photos}', '--config.data.val_percent=30',
            '--config.data.crop=32', '--config.data.batch_size=4',
            '--config.data.eval_batch_size=4', '--config.num_steps=2', '--config.log_every=1'])
  report = (tmp_path / 'run' / 'report.md').read_text()
  assert f'held-out photos of `{photos}`' in report
