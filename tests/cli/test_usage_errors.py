"""Every mistake a user can type is one line and exit status 2, before anything is written:
unknown names, bad values, unusable data, and the mistakes of colorize. Run in this process
through the command line's own entry point (cli.main.run)."""

import errno
import os

import numpy as np
import PIL.Image
import pytest
import skimage.data

from colorjax.train import workdirs
from tests import commands


def _bad_files(tmp_path):
  np.savez(tmp_path / 'objects.npz', train_images=np.array([1, 'a'], dtype=object),
           test_images=np.array([1, 'a'], dtype=object))
  (tmp_path / 'text.npz').write_text('not an npz')
  (tmp_path / 'a_file').write_text('')
  only_train = tmp_path / 'photos'
  only_train.mkdir()
  PIL.Image.fromarray(skimage.data.chelsea()[:64, :64]).save(only_train / 'cat.png')
  damaged = tmp_path / 'damaged'  # a trained run whose config.json a full disk cut short
  (damaged / 'checkpoints' / '5').mkdir(parents=True)
  (damaged / 'config.json').write_text('{"program": "zhang", "wid')


ZHANG = ['--experiment=zhang_softmax:smoke']
ABLATION = ['--experiment=norm_ablation']
MISTAKES = [
    (['--experiment=norm_ablatoin'], "unknown experiment 'norm_ablatoin'"),
    (ABLATION + ['--config.num_step=5'], "unknown config key 'num_step'"),
    (ABLATION + ['--config.num_steps=many'], 'is not a valid int'),
    (ABLATION + ['--config.schemes=unit,bogus'], 'unknown normalization'),
    (ABLATION + ['--config.image=/no/such.png'], "image '/no/such.png' not"),
    (ABLATION + ['--config.num_steps=15'], 'multiple of steps_per_call'),
    (ABLATION + ['--config.image_scale=1e6'], 'image_scale=1000000.0 must'),
    (ABLATION + ['--config.steps_per_call=0'], 'steps_per_call=0 must be'),
    (ABLATION + ['--workdir={tmp}/a_file'], 'is a file, not a folder'),
    (ABLATION + ['--workdir={tmp}/a_file/run'], 'a_file is a file, not a folder'),
    (ABLATION + ['--config.program=train'], "'train' names no program"),
    (['--frobnicate'], "unrecognized argument '--frobnicate'"),
    (ZHANG + ['--config.data.batch_size=0'], 'data.batch_size=0 must be a positive multiple'),
    (ZHANG + ['--config.data.batch_size=-8'], 'data.batch_size=-8 must be a positive multiple'),
    (ZHANG + ['--config.data.batch_size=6'], 'of the 4 device(s)'),
    (ZHANG + ['--config.data.eval_batch_size=6'], 'data.eval_batch_size=6 must be'),
    (ZHANG + ['--config.data.crop=0'], 'data.crop=0 must be 1 to'),
    (ZHANG + ['--config.data.crop=100000'], 'data.crop=100000 must be 1 to'),
    (ZHANG + ['--config.temperatures='], 'give one or more positive annealed-mean temperatures'),
    (ZHANG + ['--config.temperatures=0.38,nan'], 'positive annealed-mean temperatures'),
    (ZHANG + ['--config.eval_batches=0'], 'eval_batches=0 must be at least 1'),
    (ZHANG + ['--config.data.source=folder:{tmp}/photos', '--config.data.val_percent=0'],
     'no usable image in the eval split'),
    (['--experiment=zhang_softmax:bsds300'], 'names $COLORJAX_BSDS300, which is not set'),
    (['--experiment=yuv_gan:smoke', '--config.data.crop=40'], 'must be a multiple of 16'),
    (['--experiment=yuv_gan:smoke', '--config.n_critic=3'], 'multiple of --config.n_critic=3'),
    (['--experiment=unet_portrait', '--config.data.source=npz:/no/pfcn_small.npz'],
     "portrait data '/no/pfcn_small.npz' not found: save the PFCN portraits"),
    (['--experiment=unet_portrait:smoke', '--config.data.source=npz:{tmp}/objects.npz'],
     'is not an .npz of image arrays'),
    (['--experiment=unet_portrait:smoke', '--config.data.source=npz:{tmp}/text.npz'],
     'is not an .npz of image arrays'),
    (['--experiment=flowers_resnet:smoke', '--config.colorizer.data.crop=48'],
     'must be a multiple of 32'),
    (['--experiment=benchmark', '--config.families=unet:16,gan'],
     "entry 'gan' is not FAMILY:BATCH"),
    (['--experiment=benchmark', '--config.family_sizes=64,40'], 'must be a multiple of 16'),
    (['colorize', 'photo.png'], 'holds no run (no config.json)'),
    (['colorize', '--workdir=runs/x'], 'the following arguments are required: PATH'),
    (['colorize', '--workdir={tmp}', '{tmp}/photos/cat.png', '--temperature=nan'],
     "argument --temperature: 'nan' is not a positive number"),
    # Workdirs that cannot hold a run.
    (ZHANG + ['--workdir={tmp}/damaged'], 'config.json is damaged (not valid JSON'),
    (['colorize', '--workdir={tmp}/damaged', '{tmp}/photos/cat.png'], 'config.json is damaged'),
    (['evaluate', '--workdir={tmp}/damaged', '{tmp}/photos'], 'config.json is damaged'),
    (ABLATION + ['--workdir=/'], '--workdir=/ is a system folder'),
    (ABLATION + ['--workdir=/proc/x'], '--workdir=/proc/x is a system folder'),
    (ABLATION + ['--workdir=/dev/../sys/kernel'], 'is a system folder (/sys/kernel)'),
    (['import_weights', '{tmp}/no.pth', '--workdir={tmp}/a_file'], 'is a file, not a folder'),
    # Numbers no run can mean: one table for every program (configs.check_values).
    (ZHANG + ['--config.width=0'], 'width=0.0 must be in [0.03125, 4]'),
    (ZHANG + ['--config.width=1e-6'], 'width=1e-06 must be in [0.03125, 4]'),
    (ZHANG + ['--config.width=1e9'], 'width=1000000000.0 must be in [0.03125, 4]'),
    (ZHANG + ['--config.optimizer.learning_rate=-1'], 'optimizer.learning_rate=-1.0 must be > 0'),
    (ZHANG + ['--config.optimizer.learning_rate=inf'], 'learning_rate=inf must be > 0'),
    (ZHANG + ['--config.optimizer.weight_decay=-0.1'], 'weight_decay=-0.1 must be >= 0'),
    (ZHANG + ['--config.optimizer.b2=1'], 'optimizer.b2=1.0 must be in [0, 1)'),
    (ZHANG + ['--config.data.seed=-1'], 'data.seed=-1 must be >= 0'),
    (ZHANG + ['--config.rebalance_mix=nan'], 'rebalance_mix=nan must be in [0, 1]'),
    (ZHANG + ['--config.prior_batches=0'], 'prior_batches=0 must be >= 1'),
    (ABLATION + ['--config.seeds=0,0'], '--config.seeds repeats 0: name each once'),
    (ABLATION + ['--config.schemes=unit,unit'], '--config.schemes repeats unit'),
    (ABLATION + ['--config.channels=0'], 'channels=0 must be in [1, 1024]'),
    (ABLATION + ['--config.optimizer.name=adamm'], "unknown optimizer 'adamm'"),
    (['--experiment=yuv_gan:smoke', '--config.generator_optimizer.b1=-0.5'],
     'generator_optimizer.b1=-0.5 must be in [0, 1)'),
    (['--experiment=yuv_gan:smoke', '--config.l1_weight=-1'], 'l1_weight=-1.0 must be >= 0'),
    (['--experiment=unet_portrait:smoke', '--config.dropout=1'], 'dropout=1.0 must be in [0, 1)'),
    (['--experiment=flowers_resnet:smoke', '--config.colorizer.optimizer.momentum=1.5'],
     'colorizer.optimizer.momentum=1.5 must be in [0, 1)'),
]


@pytest.mark.parametrize('args,message', MISTAKES, ids=[m for _, m in MISTAKES])
def test_a_mistake_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
  monkeypatch.delenv('COLORJAX_BSDS300', raising=False)
  _bad_files(tmp_path)
  args = [a.format(tmp=tmp_path) for a in args]
  if not any(a.startswith('--workdir') for a in args):
    args.append(f'--workdir={tmp_path / "w"}')
  commands.assert_one_line(*commands.run_in_process(capsys, *args), message)
  assert not list(tmp_path.glob('w/checkpoints/*'))


@pytest.mark.parametrize('error', [errno.EROFS, errno.EACCES])
def test_a_read_only_workdir_is_one_line(tmp_path, monkeypatch, capsys, error):
  """A read-only mount (EROFS) or a folder without write permission (EACCES), injected at the
  lock's creation: the tests run as root, whom chmod does not stop."""
  def read_only(path, *args, **kwargs):
    raise OSError(error, os.strerror(error), str(path))

  monkeypatch.setattr(workdirs, 'open', read_only, raising=False)
  commands.assert_one_line(*commands.run_in_process(
      capsys, *ABLATION, f'--workdir={tmp_path}'), f'cannot be written ({os.strerror(error)})')


def test_a_variant_that_adds_a_field_is_a_typo(tmp_path, capsys):
  module = tmp_path / 'typo.py'
  module.write_text(
      'from experiments import norm_ablation\n'
      "VARIANTS = ('short',)\n"
      'def get_config(variant=None):\n'
      '  config = norm_ablation.get_config()\n'
      "  if variant == 'short':\n"
      '    config.num_stpes = 300\n'
      '  return config\n')
  commands.assert_one_line(*commands.run_in_process(capsys, f'--config={module}:short'),
                           "variant 'short' adds field(s) num_stpes")
  module.write_text(
      'from colorjax import configs\n'
      'import ml_collections\n'
      'def get_config():\n'
      '  config = ml_collections.ConfigDict()\n'
      "  config.data = configs.data_config(source='samples')\n"
      '  config.data.crop_size = 32\n'
      '  return config\n')
  commands.assert_one_line(*commands.run_in_process(capsys, f'--config={module}'),
                           'crop_size')
