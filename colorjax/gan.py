"""The YUV conditional GAN (Cao et al. 2017) end to end: data-parallel training of generator
and critic in one jitted step, evaluation of several samples per input (diversity and the
shared metrics), and report.md with a sample grid and the D and G loss curves."""

import itertools
import json
import pathlib

import jax
import jax.numpy as jnp

from colorjax import (color, colorize, data, distributed, evaluate, losses, report, supervised,
                      train)
from colorjax.errors import UsageError
from colorjax.models.yuv_gan import GENERATOR_FEATURES, Discriminator, Generator


def _check(config):
  if config.adversarial not in losses.ADVERSARIAL:
    raise UsageError(f'--config.adversarial={config.adversarial!r}: use one of '
                     f"{', '.join(sorted(losses.ADVERSARIAL))}")
  if config.data.crop % 16:
    raise UsageError(f'--config.data.crop={config.data.crop} must be a multiple of 16 (the '
                     'discriminator halves the size four times)')
  if not 1 <= config.noise_layers <= len(GENERATOR_FEATURES):
    raise UsageError(f'--config.noise_layers={config.noise_layers} must be 1 to '
                     f'{len(GENERATOR_FEATURES)} (the generator has that many hidden convs)')
  if config.n_critic < 1 or config.data.batch_size % config.n_critic:
    raise UsageError(f'--config.data.batch_size={config.data.batch_size} must be a multiple '
                     f'of --config.n_critic={config.n_critic}: each critic update takes its '
                     'own share of the batch')
  if config.samples < 2:
    raise UsageError(f'--config.samples={config.samples}: diversity needs at least 2')


def _networks(config):
  return (Generator(noise_layers=config.noise_layers),
          Discriminator(batch_norm=config.discriminator_batch_norm))


def _optimizer(config, field):
  return train.make_optimizer(config[field], field)


def init_state(config) -> train.GanState:
  generator, discriminator = _networks(config)
  crop = config.data.crop
  g_key, d_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  return train.GanState(
      step=jnp.zeros((), jnp.int32),
      generator=train.init_network(generator, _optimizer(config, 'generator_optimizer'),
                                   g_key, jnp.zeros((1, crop, crop, 1)),
                                   jnp.zeros((1, generator.noise_dim))),
      discriminator=train.init_network(
          discriminator, _optimizer(config, 'discriminator_optimizer'), d_key,
          jnp.zeros((1, crop, crop, 3))),
      key=state_key)


def make_train_step(config):
  generator, discriminator = _networks(config)
  critic_loss, generator_loss = losses.yuv_gan(generator, discriminator, config.adversarial,
                                               config.l1_weight, config.gp_weight)
  return train.make_gan_train_step(
      critic_loss, generator_loss, _optimizer(config, 'discriminator_optimizer'),
      _optimizer(config, 'generator_optimizer'), config.n_critic,
      config.clip if config.adversarial == 'wgan' else None)


def sample_rgb(generator, variables, y_nhw1, noise_snd):
  """S samples per input, one per noise vector: (S, N, H, W, 3) RGB, clipped to [0, 1]."""
  yuv = jax.vmap(lambda noise: generator.apply(variables, y_nhw1, noise))(noise_snd)
  return jnp.clip(color.yuv_to_rgb(yuv), 0.0, 1.0)


def _make_evaluator(config, variables):
  """jitted batch -> ({'sample 1': batch sums + diversity}, panels [gray, samples..., truth]).
  The metrics are those of the first sample; diversity compares all of them."""
  generator, _ = _networks(config)

  def evaluate_batch(variables, key, batch):
    rgb_true = batch['rgb'].astype(jnp.float32) / 255.0
    lab_true = color.rgb_to_lab(rgb_true)
    noise = jax.random.uniform(key, (config.samples, rgb_true.shape[0], generator.noise_dim))
    rgb = sample_rgb(generator, variables, color.rgb_to_yuv(rgb_true)[..., :1], noise)
    ab = color.rgb_to_lab(rgb)[..., 1:]
    sums = evaluate.batch_sums(ab[0], lab_true[..., 1:], rgb[0], rgb_true, batch['mask'])
    sums['diversity'] = jnp.sum(batch['mask'] * evaluate.diversity(ab))
    panels = jnp.concatenate([evaluate.gray_panel(lab_true)[:, None], rgb.swapaxes(0, 1),
                              rgb_true[:, None]], axis=1)
    return {'sample 1': sums}, panels

  batch_index = itertools.count()  # batch k's noise depends on (seed, k) only
  base_key = jax.random.PRNGKey(config.seed + 1)
  jitted = jax.jit(evaluate_batch)
  return lambda batch: jitted(variables, jax.random.fold_in(base_key, next(batch_index)), batch)


def main(config, workdir):
  _check(config)
  workdir = pathlib.Path(workdir)
  mesh = train.data_mesh()
  train_source = data.load_source(config.data, 'train')
  state = train.replicate(init_state(config), mesh)
  step = train.shard_train_step(make_train_step(config), mesh)
  advance = train.advance_with_batches(step, lambda start: data.prefetch_to_device(
      data.train_batches(train_source, config.data, start), mesh))
  state = train.fit(workdir=workdir, state=state, advance=advance, num_steps=config.num_steps,
                    checkpoint_every=config.checkpoint_every, log_every=config.log_every,
                    max_to_keep=config.max_to_keep, description=f'yuv gan {config.adversarial}')

  metrics, grid, eval_source = supervised.evaluate_on_source(
      config, _make_evaluator(config, state.generator.variables))
  if not distributed.is_main():
    return
  (workdir / 'metrics_eval.json').write_text(json.dumps(metrics, indent=2) + '\n')
  print(f'report: {_write_report(config, workdir, metrics, grid, eval_source)}')


def colorizer(config, workdir, options) -> colorize.Trained:
  """`options.samples` outputs per file (default 1), each from its own noise."""
  colorize.single(options, 'yuv_gan')
  generator, _ = _networks(config)
  samples = options.samples or 1

  def predict(state, lab, keys):
    noise = jax.vmap(lambda key: jax.random.uniform(key, (samples, generator.noise_dim)))(keys)
    y = color.lab_to_rgb(lab)[..., :1]  # lab is gray: R = G = B = Y
    rgb = sample_rgb(generator, state.generator.variables, y, noise.swapaxes(0, 1))
    return color.rgb_to_lab(rgb)[..., 1:]

  return colorize.Trained(workdir, lambda: init_state(config), predict,
                          (config.data.crop, config.data.crop), frozenset({'samples'}))


def _write_report(config, workdir, metrics, grid, eval_source):
  m = metrics['sample 1']
  loss_name = {'bce': 'non-saturating BCE', 'wgan': f'WGAN, weights clipped to ±{config.clip}',
               'wgan_gp': f'WGAN-GP (λ = {config.gp_weight})'}[config.adversarial]
  sections = [
      f'{loss_name}, {config.n_critic} critic update(s) per generator update, noise before '
      f'the first {config.noise_layers} conv(s), L1 weight {config.l1_weight}; data '
      f'`{config.data.source}` at {config.data.crop}x{config.data.crop}, '
      f'{config.num_steps} steps of batch {config.data.batch_size}; evaluated on '
      f'{eval_source.num_examples} held-out images (for `samples` these are the training '
      'photos: a smoke test only), each with '
      f'{config.samples} noise samples.',
      report.markdown_table(
          ['diversity', 'PSNR (dB)', 'colourfulness pred / true', 'ab std pred / true',
           'ab-std ratio', 'AuC'],
          [[f"{m['diversity']:.2f}", f"{m['psnr']:.2f}",
            f"{m['colourfulness_pred']:.1f} / {m['colourfulness_true']:.1f}",
            f"{m['ab_std_pred']:.2f} / {m['ab_std_true']:.2f}", f"{m['ab_std_ratio']:.3f}",
            f"{m['auc']:.4f}"]]),
      'Diversity: mean ab distance (Lab units) between two samples of the same input, over '
      'all pairs of samples and pixels; 0 means the noise is ignored. The other metrics are '
      'those of the first sample against the truth.',
  ]
  if grid:
    report.save_image_grid(workdir / 'samples.png', grid,
                           ['input (Y)'] + [f'sample {i + 1}' for i in range(config.samples)]
                           + ['truth'])
    sections += ['## Samples', 'Each row is one input; the columns are samples with '
                 'different noise, then the truth.', '![samples](samples.png)']
  history = train.read_metrics(workdir)
  steps = [row['step'] for row in history]
  report.save_curves(workdir / 'loss_curves.png', {
      'discriminator': [(steps, [row['d_loss'] for row in history], 'D loss')],
      'generator': [(steps, [row['g_loss'] for row in history], 'G loss')]},
      ylabel='loss', log_y=False)
  sections += ['## Training losses', '![losses](loss_curves.png)']
  return report.write_report(workdir, 'YUV conditional GAN (Cao et al. 2017)', sections)
