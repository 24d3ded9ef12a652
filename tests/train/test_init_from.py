"""Fine-tuning (--config.init_from): a run starts from another run's network with a fresh
optimizer, a network of another shape or family is one line before anything is written, and
a resumed fine-tuning run never reads init_from again."""

import json
import shutil

import jax
import numpy as np
import PIL.Image
import pytest

from colorjax import configs, inference
from colorjax.cli import flags
from colorjax.data import images
from colorjax.families import zhang as family
from colorjax.families.spec import Options
from colorjax.train import checkpoint, optim, supervised
from colorjax.train.init_from import initializer
from tests import commands, test_released

PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'immunohistochemistry')
# A tiny zhang_softmax run that starts from conftest's zhang_run (width 1/16).
TINY = ('--experiment=zhang_softmax:smoke', '--config.width=0.0625', '--config.data.crop=32',
        '--config.data.batch_size=4', '--config.data.eval_batch_size=4',
        '--config.prior_batches=1', '--config.temperatures=1.0', '--config.report_images=0')
released = test_released.released  # the fixture: a random eccv16 .pth, imported


def _photo_folder(root):
  """Five small photos, one held out by name."""
  root.mkdir()
  for name in PHOTOS:
    photo = images.sample_photo(name)
    PIL.Image.fromarray(images.resize_rgb(photo, (96, 96 * photo.shape[1] // photo.shape[0]))
                        ).save(root / f'{name}.jpg', quality=95)
  return root


def _losses(workdir):
  return [json.loads(line)['loss'] for line in (workdir / 'metrics.jsonl').open()]


def _variables(workdir):
  return inference.load_network(workdir, Options())[1]


@pytest.mark.slow
def test_a_few_steps_from_the_imported_release_move_its_loss(released, tmp_path, capsys):
  _, _, imported = released
  workdir = tmp_path / 'tuned'
  code, err = commands.run_in_process(
      capsys, '--experiment=zhang_softmax', f'--workdir={workdir}',
      f'--config.init_from={imported}', f'--config.bins={imported / "bins.npy"}',
      f'--config.data.source=folder:{_photo_folder(tmp_path / "photos")}',
      '--config.data.val_percent=20', '--config.data.crop=64', '--config.data.batch_size=4',
      '--config.data.eval_batch_size=4', '--config.prior_batches=2',
      '--config.optimizer.learning_rate=1e-4', '--config.num_steps=6', '--config.log_every=1',
      '--config.checkpoint_every=6', '--config.eval_batches=1', '--config.temperatures=1.0',
      '--config.report_images=0')
  assert code == 0, err
  losses = _losses(workdir)
  assert len(losses) == 6 and losses[-1] < losses[0] - 0.05, losses
  start, tuned = _variables(imported), _variables(workdir)
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                                       start['params'], tuned['params']))
  # Every weight moved, each by at most 6 Adam steps of 1e-4: it started from the release.
  assert 0 < min(moved) <= max(moved) <= 1e-3, moved


def test_a_network_of_another_shape_is_one_line_before_anything_is_written(zhang_run, tmp_path,
                                                                          capsys):
  run, _, _ = zhang_run
  workdir = tmp_path / 'tuned'
  code, err = commands.run_in_process(
      capsys, *TINY, f'--workdir={workdir}', f'--config.init_from={run}',
      '--config.width=0.125')
  commands.assert_one_line(code, err, 'width 0.0625 there, 0.125 here')
  assert 'ConvStack_0/BatchNorm_0/mean: shape (8,) expected, (4,) saved' in err
  assert not (workdir / 'prior.npz').exists() and not (workdir / 'checkpoints').exists()
  code, err = commands.run_in_process(
      capsys, *TINY, f'--workdir={tmp_path / "regression"}', f'--config.init_from={run}',
      '--config.head=regression')
  commands.assert_one_line(code, err, 'head softmax there, regression here')


def test_other_bins_another_family_or_no_run_are_one_line(zhang_run, bins_313, tmp_path,
                                                         capsys):
  run, _, _ = zhang_run
  np.save(tmp_path / 'bins.npy', bins_313)
  code, err = commands.run_in_process(capsys, *TINY, f'--workdir={tmp_path / "a"}',
                                      f'--config.init_from={run}',
                                      f'--config.bins={tmp_path / "bins.npy"}')
  commands.assert_one_line(code, err, "its own 261 bins, this run with 313 other ones: pass "
                           "--config.bins=''")
  code, err = commands.run_in_process(
      capsys, '--experiment=unet_portrait:smoke', f'--workdir={tmp_path / "b"}',
      f'--config.init_from={run}')
  commands.assert_one_line(code, err, 'is a zhang run: a unet_portrait network starts only '
                           'from a unet_portrait run')
  code, err = commands.run_in_process(capsys, *TINY, f'--workdir={tmp_path / "c"}',
                                      f'--config.init_from={tmp_path / "nothing"}')
  commands.assert_one_line(code, err, 'holds no run (no config.json)')


@pytest.mark.parametrize('experiment, field', [('yuv_gan:smoke', 'init_from'),
                                               ('flowers_resnet:smoke', 'colorizer.init_from')])
def test_programs_that_cannot_fine_tune_refuse_it(experiment, field, tmp_path, capsys):
  code, err = commands.run_in_process(capsys, f'--experiment={experiment}',
                                      f'--workdir={tmp_path}', f'--config.{field}=runs/x')
  commands.assert_one_line(code, err, f'--config.{field}=runs/x: ')


@pytest.mark.slow
def test_a_resumed_fine_tuning_reads_its_own_checkpoints_not_init_from(zhang_run, tmp_path,
                                                                       capsys):
  source = tmp_path / 'source'
  shutil.copytree(zhang_run[0], source)

  def tune(workdir, steps):
    return commands.run_in_process(capsys, *TINY, f'--workdir={workdir}',
                                   f'--config.init_from={source}', f'--config.num_steps={steps}',
                                   '--config.checkpoint_every=2')

  assert tune(tmp_path / 'unbroken', 4)[0] == 0
  assert tune(tmp_path / 'resumed', 2)[0] == 0  # stopped at a checkpoint, as after a kill
  shutil.rmtree(source)  # read again, it would be one line: no run there
  code, err = tune(tmp_path / 'resumed', 4)
  assert code == 0, err
  assert jax.tree.all(jax.tree.map(np.array_equal, _variables(tmp_path / 'unbroken'),
                                   _variables(tmp_path / 'resumed')))
  code, err = commands.run_in_process(capsys, *TINY, f'--workdir={tmp_path / "resumed"}',
                                      '--config.num_steps=6')
  commands.assert_one_line(code, err, 'init_from differ')  # config.json keeps where it began


@pytest.mark.slow
def test_a_trained_run_gives_its_network_and_a_fresh_optimizer(zhang_run, tmp_path):
  run, _, saved = zhang_run
  source = tmp_path / 'source'
  shutil.copytree(run, source)
  trained = saved.replace(step=np.int32(7), opt_state=jax.tree.map(lambda x: x + 1,
                                                                    saved.opt_state))
  checkpoints = checkpoint.Checkpoints(source, None)
  checkpoints.save(7, trained)  # moments and a step that a fine-tuning run must not take
  checkpoints.close()
  config = flags.apply_overrides(configs.load_config('zhang_softmax:smoke'),
                                 {'width': '0.0625', 'init_from': str(source)}, 'zhang')
  workdir = tmp_path / 'tuned'
  network = family.network_spec(config, workdir, Options())
  fresh = supervised.initial_state(config, family.network(config, family.bins(config, workdir)))
  state = initializer(config, network)(fresh)
  assert jax.tree.all(jax.tree.map(np.array_equal, state.params, saved.params))
  assert jax.tree.all(jax.tree.map(np.array_equal, state.batch_stats, saved.batch_stats))
  assert int(state.step) == 0
  fresh_moments = optim.make_optimizer(config.optimizer).init(saved.params)
  assert jax.tree.all(jax.tree.map(np.array_equal, state.opt_state, fresh_moments))
