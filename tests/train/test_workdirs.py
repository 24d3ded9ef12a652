"""One run per workdir: the lock names its holder and dies with it; config.json binds a run
(of any of its networks) once it has a checkpoint, and fields that only change evaluation may
change."""

import shutil
import subprocess
import sys

import pytest

from colorjax import configs
from colorjax.cli import flags
from colorjax.errors import UsageError
from colorjax.train import workdirs
from tests import commands


def hold_lock(workdir):
  """A process that holds the workdir's lock until killed."""
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; from colorjax.train import workdirs; '
       'workdirs.acquire(sys.argv[1]); print("held", flush=True); time.sleep(600)',
       str(workdir)], cwd=commands.ROOT, stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  return holder


@pytest.mark.slow
def test_the_lock_names_its_holder(tmp_path):
  holder = hold_lock(tmp_path)
  try:
    with pytest.raises(UsageError, match=f'pid {holder.pid}'):
      workdirs.acquire(tmp_path)
  finally:
    holder.kill()
    holder.wait()


def _unet_config(**overrides):
  config = configs.load_config('unet_portrait:smoke')
  return flags.apply_overrides(config, {k: str(v) for k, v in overrides.items()}, 'unet')


def test_a_multi_network_run_is_bound_by_the_checkpoints_of_its_networks(tmp_path):
  workdirs.bind(tmp_path, _unet_config())
  (tmp_path / 'gray2rgb' / 'checkpoints' / '30').mkdir(parents=True)
  before = (tmp_path / 'config.json').read_text()
  with pytest.raises(UsageError, match=r'dropout differ'):
    workdirs.bind(tmp_path, _unet_config(dropout=0.2))
  assert (tmp_path / 'config.json').read_text() == before
  # Evaluation-only fields may change on a finished run, which then re-evaluates.
  workdirs.bind(tmp_path, _unet_config(eval_batches=2, report_images=1,
                                       **{'data.eval_batch_size': 4}))


def test_a_workdir_without_a_complete_checkpoint_is_not_bound(tmp_path):
  (tmp_path / 'checkpoints' / '10.orbax-checkpoint-tmp-1234').mkdir(parents=True)
  workdirs.bind(tmp_path, _unet_config())
  workdirs.bind(tmp_path, _unet_config(dropout=0.2))  # not bound: nothing trained


@pytest.mark.parametrize('text', [b'{"program": "zhang", "wid', b'[1, 2]', b'\xff\xfe{}', b''])
def test_a_damaged_config_json_is_one_line_naming_the_fix(tmp_path, text):
  (tmp_path / workdirs.CONFIG_FILE).write_bytes(text)
  with pytest.raises(UsageError, match='config.json is damaged .*: delete it and run the '
                     'training command'):
    workdirs.read_config(tmp_path)


def test_a_sound_config_json_is_read_back(tmp_path):
  workdirs.bind(tmp_path, _unet_config())
  assert workdirs.read_config(tmp_path)['program'] == 'unet_portrait'


def test_a_link_to_a_system_folder_is_refused_before_anything_is_written(tmp_path):
  (tmp_path / 'root').symlink_to('/')
  with pytest.raises(UsageError, match=r'is a system folder \(/\)'):
    workdirs.acquire(tmp_path / 'root')
  workdirs.check_folder(tmp_path / 'runs' / 'a')  # an ordinary folder, not there yet


@pytest.mark.parametrize('fate', ['deleted', 'replaced'])
def test_a_workdir_deleted_or_replaced_under_a_run_is_named(tmp_path, monkeypatch, fate):
  monkeypatch.setattr(workdirs, '_held', {})
  workdir = tmp_path / 'run'
  workdirs.acquire(workdir)
  workdirs.check_held(workdir)  # still the run's own folder
  shutil.rmtree(workdir)
  if fate == 'replaced':  # and another run made the folder again, with its own lock
    workdir.mkdir()
    (workdir / workdirs.LOCK_FILE).write_text('{}')
  with pytest.raises(UsageError, match='was deleted or replaced while this run trained'):
    workdirs.check_held(workdir)
