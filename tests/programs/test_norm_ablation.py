"""The normalization ablation: one compile for every run, vmapped runs equal to separate
runs, and the command end to end (report, figures, not retrained, colorizes)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax import color
from colorjax.data import images
from colorjax.families import norm_ablation as family
from colorjax.programs import norm_ablation as ablation
from colorjax.train import losses, metrics_log, optim, train_state
from experiments import norm_ablation
from tests import commands

SMALL = ['--config.image_scale=0.1', '--config.seeds=0,1,2,3', '--config.num_steps=20',
         '--config.steps_per_call=10', '--config.log_every=10', '--config.checkpoint_every=10']


def _small_config(**changes):
  config = norm_ablation.get_config()
  config.update(dict(image_scale=0.1, seeds=(0, 1), schemes=('unit', 'none'), num_steps=20,
                     steps_per_call=10, log_every=10, checkpoint_every=10), **changes)
  return config


@pytest.mark.slow
def test_the_training_loop_compiles_once(tmp_path, caplog):
  with jax.log_compiles(True), caplog.at_level(logging.WARNING):
    ablation.main(_small_config(num_steps=40), tmp_path)
  compiles = [r for r in caplog.records if 'Compiling jit(advance)' in r.getMessage()]
  assert len(compiles) == 1


@pytest.mark.slow
def test_each_vmapped_run_equals_the_same_run_trained_alone(tmp_path):
  config = _small_config()
  ablation.main(config, tmp_path)
  # (steps, runs)
  logged = np.asarray([row['loss'] for row in metrics_log.read_metrics(tmp_path)])

  runs = [(s, seed) for s in config.schemes for seed in config.seeds]
  image = images.load_image(config.image, config.image_scale)
  model = family.network(config)
  tx = optim.make_optimizer(config.optimizer)
  for index, (scheme, seed) in enumerate(runs):
    step = jax.jit(train_state.make_train_step(
        losses.ab_regression(model, color.NORMALIZATIONS[scheme]), tx))
    state = train_state.init_state(model, tx, jax.random.PRNGKey(seed),
                                   jnp.zeros((1, *image.shape[:2], 1)))
    alone = []
    for _ in range(config.num_steps):
      state, metrics = step(state, {'rgb': image[None]})
      alone.append(float(metrics['loss']))
    np.testing.assert_allclose(logged[:, index], alone, rtol=1e-4)


@pytest.mark.slow
def test_norm_ablation_writes_report_and_figures_and_is_not_retrained(tmp_path):
  result = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert result.returncode == 0, result.stderr
  report = (tmp_path / 'report.md').read_text()
  for scheme in ('none', 'unit', 'centered', 'pix2pix', 'shifted'):
    assert f'| `{scheme}` |' in report
  assert '| `unit` − `none` |' in report and 'paired bootstrap interval' in report
  for figure in ('reconstructions.png', 'loss_curves.png', 'config.json', 'metrics.jsonl'):
    assert (tmp_path / figure).stat().st_size > 0
  again = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert again.returncode == 0 and 'already trained to step 20' in again.stdout
  assert len(commands.colorize_a_photo(tmp_path, tmp_path / 'colorized')) == 1
