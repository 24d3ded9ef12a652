"""The normalization ablation in-process: one compile, and vmapped runs equal separate runs."""

import logging

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color, images, losses, train
from colorjax.programs import norm_ablation as ablation
from colorjax.models.tiny_cnn import TinyCNN
from experiments import norm_ablation


def _small_config(**changes):
  config = norm_ablation.get_config()
  config.update(dict(image_scale=0.1, seeds=(0, 1), schemes=('unit', 'none'), num_steps=20,
                     steps_per_call=10, log_every=10, checkpoint_every=10), **changes)
  return config


def test_the_training_loop_compiles_once(tmp_path, caplog):
  with jax.log_compiles(True), caplog.at_level(logging.WARNING):
    ablation.main(_small_config(num_steps=40), tmp_path)
  compiles = [r for r in caplog.records if 'Compiling jit(advance)' in r.getMessage()]
  assert len(compiles) == 1


def test_each_vmapped_run_equals_the_same_run_trained_alone(tmp_path):
  config = _small_config()
  ablation.main(config, tmp_path)
  logged = np.asarray([row['loss'] for row in train.read_metrics(tmp_path)])  # (steps, runs)

  runs = [(s, seed) for s in config.schemes for seed in config.seeds]
  image = images.load_image(config.image, config.image_scale)
  model = TinyCNN(channels=config.channels)
  tx = train.make_optimizer(config.optimizer)
  for index, (scheme, seed) in enumerate(runs):
    step = jax.jit(train.make_train_step(
        losses.ab_regression(model, color.NORMALIZATIONS[scheme]), tx))
    state = train.init_state(model, tx, jax.random.PRNGKey(seed),
                             jnp.zeros((1, *image.shape[:2], 1)))
    alone = []
    for _ in range(config.num_steps):
      state, metrics = step(state, {'rgb': image[None]})
      alone.append(float(metrics['loss']))
    np.testing.assert_allclose(logged[:, index], alone, rtol=1e-4)
