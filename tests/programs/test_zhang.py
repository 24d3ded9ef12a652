"""Zhang et al.'s program: the empirical prior and its cache, a user's bin file, and both
heads end to end with the comparison."""

import numpy as np
import pytest

from colorjax import configs, mesh, quantize
from colorjax.cli import flags
from colorjax.data import sources
from colorjax.programs import zhang
from colorjax.train import metrics_log
from tests import commands

ZHANG_SMOKE = ['--config.num_steps=10', '--config.checkpoint_every=10', '--config.log_every=10',
               '--config.prior_batches=2']


def test_a_prior_computed_from_other_bins_or_data_is_computed_again(tmp_path):
  config = flags.apply_overrides(configs.load_config('zhang_softmax:smoke'), {
      'prior_batches': '1', 'data.crop': '16', 'data.batch_size': '4'}, 'zhang')
  source = sources.load_source(config.data, 'train')
  data_mesh = mesh.data_mesh()
  bins = quantize.gamut_bins()
  first = zhang._prior(config, tmp_path, source, bins, data_mesh)
  assert first.shape == (len(bins),)
  fewer = bins[::2]  # a user's bin file with other bins
  assert zhang._prior(config, tmp_path, source, fewer, data_mesh).shape == (len(fewer),)
  config.data.seed = 1  # other training batches
  again = zhang._prior(config, tmp_path, source, bins, data_mesh)
  assert again.shape == first.shape and not np.array_equal(again, first)
  np.testing.assert_array_equal(zhang._prior(config, tmp_path, source, bins, data_mesh), again)


@pytest.mark.slow
def test_a_313_bin_file_trains_and_evaluates_a_zhang_run(tmp_path, bins_313):
  """--config.bins=PATH with the released count of bins: prior, loss and evaluation all use
  the file's 313 bins."""
  np.save(tmp_path / 'pts_in_hull.npy', bins_313)
  config = flags.apply_overrides(configs.load_config('zhang_softmax:smoke'), {
      'bins': str(tmp_path / 'pts_in_hull.npy'), 'width': '0.0625', 'data.crop': '16',
      'num_steps': '2', 'checkpoint_every': '2', 'log_every': '1', 'prior_batches': '1',
      'report_images': '1', 'temperatures': '0.38'}, 'zhang')
  zhang.main(config, tmp_path / 'run')
  with np.load(tmp_path / 'run' / 'prior.npz') as prior:
    assert prior['prior'].shape == (313,)
  assert [row['step'] for row in metrics_log.read_metrics(tmp_path / 'run')] == [0, 1]
  assert 'T=0.38' in (tmp_path / 'run' / 'report.md').read_text()


@pytest.mark.slow
def test_zhang_smoke_runs_and_comparison(tmp_path):
  for head in ('softmax', 'regression'):
    result = commands.run_py(f'--experiment=zhang_{head}:smoke', f'--workdir={tmp_path / head}',
                             *ZHANG_SMOKE)
    assert result.returncode == 0, result.stderr
    report = (tmp_path / head / 'report.md').read_text()
    assert 'ab-std ratio' in report
    for output in ('samples.png', 'loss_curve.png', 'prior.npz', 'metrics_eval.json'):
      assert (tmp_path / head / output).stat().st_size > 0
  assert '| T=0.38 |' in (tmp_path / 'softmax' / 'report.md').read_text()
  for head, args in (('softmax', ['--temperature=0.5']), ('regression', [])):
    outputs = commands.colorize_a_photo(tmp_path / head, tmp_path / f'colorized_{head}', *args)
    assert len(outputs) == 1
  compare = commands.run_py('--experiment=zhang_compare', f'--workdir={tmp_path / "compare"}',
                            f'--config.runs={tmp_path / "softmax"},{tmp_path / "regression"}')
  assert compare.returncode == 0, compare.stderr
  table = (tmp_path / 'compare' / 'report.md').read_text()
  assert '| regression |' in table and '| T=0.38 |' in table


@pytest.mark.slow
def test_zhang_without_imagenet_names_the_alternatives(tmp_path):
  result = commands.run_py('--experiment=zhang_softmax', f'--workdir={tmp_path / "w"}',
                           f'--config.data.tfds_data_dir={tmp_path / "tfds"}',
                           lean_runtime=False)  # ImageNet's manual download: a tfds matter
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert 'imagenette' in lines[0] and 'samples' in lines[0]
