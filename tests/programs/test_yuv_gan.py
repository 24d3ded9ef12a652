"""The GAN: its train step (both networks learn, data parallelism changes nothing, WGAN
clips, the authors' variant), and the smoke run end to end with samples."""

import json

import jax
import numpy as np
import pytest

from colorjax import configs, mesh
from colorjax.families import yuv_gan as family
from colorjax.programs import yuv_gan as gan
from tests import commands


def _config(**overrides):
  config = configs.load_config('yuv_gan:smoke')
  config.data.crop = 16
  config.data.batch_size = 8
  for name, value in overrides.items():
    setattr(config, name, value)  # replaces a whole optimizer block, where update() merges
  return config


def _batch():
  return {'rgb': np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), np.uint8)}


def _leaves_changed(before, after):
  return [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before),
                                                    jax.tree.leaves(after))]


@pytest.mark.slow
def test_one_step_trains_both_networks_identically_on_one_and_four_devices():
  """With SGD, so parameters compare gradients: Adam's first step is lr x sign(gradient),
  which turns float rounding in a near-zero gradient into a full step of either sign."""
  sgd = {'name': 'sgd', 'learning_rate': 0.1}
  config = _config(generator_optimizer=sgd, discriminator_optimizer=sgd)
  initial = jax.device_get(gan.init_state(config))  # on the host: the steps donate theirs
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    data_mesh = mesh.data_mesh(devices)
    step = mesh.shard_train_step(gan.make_train_step(config), data_mesh)
    state, metrics = step(mesh.replicate(initial, data_mesh), _batch())
    results.append((jax.device_get(state), jax.device_get(metrics)))
  (one, one_metrics), (four, four_metrics) = results
  assert all(_leaves_changed(initial.generator.params, four.generator.params))
  assert all(_leaves_changed(initial.discriminator.params, four.discriminator.params))
  assert int(four.step) == 1
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               atol=1e-5, rtol=0)
  assert set(four_metrics) >= {'d_loss', 'g_loss', 'd_real', 'd_fake'}
  np.testing.assert_allclose(one_metrics['g_loss'], four_metrics['g_loss'], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('adversarial', ['wgan', 'wgan_gp'])
def test_wasserstein_variants(adversarial):
  """wgan: after n_critic updates every critic weight lies in [-clip, clip] (and some did
  not before, so clipping acted); wgan_gp: no clipping, a finite gradient penalty."""
  clip = 0.01
  config = _config(adversarial=adversarial, n_critic=2, clip=clip,
                   discriminator_batch_norm=adversarial == 'wgan')
  initial = gan.init_state(config)
  state, metrics = jax.jit(gan.make_train_step(config))(initial, _batch())
  critic = jax.tree.leaves(state.discriminator.params)
  widest_before = max(float(np.max(np.abs(w))) for w in jax.tree.leaves(
      initial.discriminator.params))
  widest_after = max(float(np.max(np.abs(w))) for w in critic)
  if adversarial == 'wgan':
    assert widest_before > clip and widest_after <= clip
  else:
    assert widest_after > clip and np.isfinite(float(metrics['gradient_penalty']))
  assert all(_leaves_changed(initial.generator.params, state.generator.params))


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_critic_updates_is_refused():
  with pytest.raises(ValueError, match='n_critic=3'):
    jax.eval_shape(gan.make_train_step(_config(n_critic=3)), gan.init_state(_config()),
                   _batch())


@pytest.mark.slow
def test_authors_variant_trains_in_scaled_ycbcr():
  """yuv_gan:authors: one step changes every kernel of both released networks (a bias
  before BatchNorm has no gradient, and RMSProp's first step of 1e-4 x g can round away on a
  scale of 1), the generator keeps the condition Y as the release's scaled YCbCr gives it
  (2 Y - 1, not BT.601 Y), and its UV stay within tanh's [-1, 1]."""
  config = configs.load_config('yuv_gan:authors')
  config.data.crop = 16
  config.data.batch_size = 10  # 5 critic updates of 2 images each
  initial = gan.init_state(config)
  batch = {'rgb': np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), np.uint8)}
  state, metrics = jax.jit(gan.make_train_step(config))(initial, batch)
  kernels = lambda network: [layer['kernel'] for layer in network.params.values()
                             if 'kernel' in layer]
  for before, after in ((initial.generator, state.generator),
                        (initial.discriminator, state.discriminator)):
    assert len(kernels(before)) >= 6 and all(_leaves_changed(kernels(before), kernels(after)))
  assert np.isfinite(float(metrics['g_loss']))
  generator, _ = family.networks(config)
  rgb = batch['rgb'][:2] / 255.0
  y = 2 * (rgb @ np.array([0.299, 0.587, 0.114]))[..., None] - 1
  yuv = generator.apply(state.generator.variables, y, generator.sample_noise(
      jax.random.PRNGKey(1), 2))
  np.testing.assert_allclose(yuv[..., :1], y, atol=1e-6)
  assert float(np.max(np.abs(yuv[..., 1:]))) <= 1.0


@pytest.mark.slow
def test_yuv_gan_smoke_writes_report_grid_and_curves(tmp_path):
  result = commands.run_py('--experiment=yuv_gan:smoke', f'--workdir={tmp_path}',
                           '--config.num_steps=20', '--config.checkpoint_every=10')
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
  seed_0 = commands.colorize_a_photo(tmp_path, tmp_path / 'seed_0', '--samples=2')
  seed_1 = commands.colorize_a_photo(tmp_path, tmp_path / 'seed_1', '--samples=2', '--seed=1')
  again = commands.colorize_a_photo(tmp_path, tmp_path / 'seed_0_again', '--samples=2')
  assert len(seed_0) == 2 and not np.array_equal(seed_0[0], seed_0[1])
  assert not np.array_equal(seed_0[0], seed_1[0])
  assert all(np.array_equal(a, b) for a, b in zip(seed_0, again))
