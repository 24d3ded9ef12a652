"""The YUV conditional GAN (Cao et al. 2017) end to end: the GAN's training state and its
one jitted step (critic and generator updates), evaluation of several samples per input
(diversity and the shared metrics), and report.md with a sample grid and the D and G loss
curves. Experiment: yuv_gan."""

import pathlib

import flax.struct
import jax
import jax.numpy as jnp

from colorjax import configs, distributed, mesh, precision
from colorjax.configs import Loop
from colorjax.data import pipeline, sources
from colorjax.errors import UsageError
from colorjax.eval import evaluator, report, stats
from colorjax.eval.metrics import summarize
from colorjax.families import yuv_gan as family
from colorjax.families.spec import Options
from colorjax.models.yuv_gan import LAYOUTS
from colorjax.train import init_from, loop, losses, metrics_log, optim, supervised, throughput
from colorjax.train.train_state import (
  NetworkState,
  advance_with_batches,
  apply_gradients,
  init_network,
)


def check(config):
  configs.check_values(config)
  optim.check_blocks(config)
  supervised.check_stage(config)
  precision.compute_dtype(config)
  if config.adversarial not in losses.ADVERSARIAL:
    raise UsageError(f'--config.adversarial={config.adversarial!r}: use one of '
                     f"{', '.join(sorted(losses.ADVERSARIAL))}")
  if config.data.crop % 16:
    raise UsageError(f'--config.data.crop={config.data.crop} must be a multiple of 16 (the '
                     'discriminator halves the size four times)')
  if config.networks not in LAYOUTS:
    raise UsageError(f'--config.networks={config.networks!r}: use one of '
                     f"{', '.join(LAYOUTS)}")
  hidden = len(LAYOUTS[config.networks].generator_features)
  if not 1 <= config.noise_layers <= hidden:
    raise UsageError(f'--config.noise_layers={config.noise_layers} must be 1 to {hidden} (the '
                     'generator has that many hidden convs)')
  if config.n_critic < 1 or config.data.batch_size % config.n_critic:
    raise UsageError(f'--config.data.batch_size={config.data.batch_size} must be a multiple '
                     f'of --config.n_critic={config.n_critic}: each critic update takes its '
                     'own share of the batch')
  if config.samples < 2:
    raise UsageError(f'--config.samples={config.samples}: diversity needs at least 2')
  init_from.refuse(config, 'yuv_gan trains its generator and critic together, from fresh '
                   'weights')


@flax.struct.dataclass
class GanState:
  step: jax.Array
  generator: NetworkState
  discriminator: NetworkState
  key: jax.Array


def gan_train_step(critic_loss_fn, generator_loss_fn, critic_tx, generator_tx,
                        n_critic: int = 1, clip: float | None = None):
  """(GanState, batch) -> (GanState, metrics): `n_critic` critic updates, then one generator
  update, in one function (jit it once with mesh.shard_train_step).

  The batch is split into `n_critic` parts, so every critic update sees real images of its
  own, as in WGAN's reference loop; the generator update uses the last part's conditions.
  The losses are (params, batch_stats, other network's variables, batch, key) -> (loss,
  (metrics, batch_stats)) (losses.yuv_gan). With `clip`, every critic weight is clipped to
  [-clip, clip] after each of its updates (WGAN).
  """

  def update(network, tx, loss_fn, other, batch, key):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (metrics, batch_stats)), grads = grad_fn(
        network.params, network.batch_stats, other.variables, batch, key)
    params, opt_state = apply_gradients(tx, grads, network.opt_state, network.params)
    return NetworkState(params, opt_state, batch_stats), loss, metrics

  def split(x):
    """(n_critic * b, ...) -> (n_critic, b, ...), part i = examples i, i + n_critic, ...: the
    examples each device holds stay on it."""
    if x.shape[0] % n_critic:
      raise ValueError(f'a batch of {x.shape[0]} does not split into n_critic={n_critic} parts')
    return x.reshape(x.shape[0] // n_critic, n_critic, *x.shape[1:]).swapaxes(0, 1)

  def train_step(state: GanState, batch):
    key = jax.random.fold_in(state.key, state.step)

    def critic_update(critic, index, part):
      critic, loss, metrics = update(critic, critic_tx, critic_loss_fn, state.generator, part,
                                     jax.random.fold_in(key, index))
      if clip is not None:
        critic = critic.replace(params=jax.tree.map(lambda w: jnp.clip(w, -clip, clip),
                                                    critic.params))
      return critic, {'d_loss': loss, **metrics}

    parts = jax.tree.map(split, batch)
    critic, critic_metrics = state.discriminator, []
    for index in range(n_critic):  # unrolled: under lax.scan, XLA:CPU took 2x as long
      critic, metrics = critic_update(critic, index, jax.tree.map(lambda x: x[index], parts))
      critic_metrics.append(metrics)
    generator, loss, metrics = update(state.generator, generator_tx, generator_loss_fn, critic,
                                      jax.tree.map(lambda x: x[-1], parts),
                                      jax.random.fold_in(key, n_critic))
    state = state.replace(step=state.step + 1, generator=generator, discriminator=critic)
    critic_metrics = jax.tree.map(lambda *values: jnp.mean(jnp.stack(values)), *critic_metrics)
    return state, {**critic_metrics, 'g_loss': loss, **metrics}

  return train_step


def _optimizer(config, field):
  return optim.make_optimizer(config[field], field)


def init_state(config) -> GanState:
  generator, discriminator = family.networks(config)
  crop = config.data.crop
  g_key, d_key, state_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  return GanState(
      step=jnp.zeros((), jnp.int32),
      generator=init_network(generator, _optimizer(config, 'generator_optimizer'),
                                   g_key, jnp.zeros((1, crop, crop, 1)),
                                   jnp.zeros((1, generator.noise_dim))),
      discriminator=init_network(
          discriminator, _optimizer(config, 'discriminator_optimizer'), d_key,
          jnp.zeros((1, crop, crop, 3))),
      key=state_key)


def make_train_step(config):
  generator, discriminator = family.networks(config)
  critic_loss, generator_loss = losses.yuv_gan(generator, discriminator, config.adversarial,
                                               config.l1_weight, config.gp_weight)
  return gan_train_step(
      critic_loss, generator_loss, _optimizer(config, 'discriminator_optimizer'),
      _optimizer(config, 'generator_optimizer'), config.n_critic,
      config.clip if config.adversarial == 'wgan' else None)


def main(config, workdir):
  check(config)
  workdir = pathlib.Path(workdir)
  data_mesh = mesh.data_mesh()
  train_source = sources.load_source(config.data, 'train')
  eval_source = sources.load_source(config.data, 'eval')
  fresh = mesh.replicate(init_state(config), data_mesh)
  step = mesh.shard_train_step(make_train_step(config), data_mesh)
  advance = advance_with_batches(step, lambda start: pipeline.prefetch_to_device(
      pipeline.train_batches(train_source, config.data, start), data_mesh))
  rates = {f'{network[0]}_learning_rate': optim.learning_rate_at(config[field], field)
           for network, field in (('generator', 'generator_optimizer'),
                                  ('discriminator', 'discriminator_optimizer'))}
  network = family.network_spec(config, workdir, Options())
  trained = loop.fit(
      workdir, fresh, advance, Loop.from_config(config),
      description=f'yuv gan {config.adversarial}', images_per_step=config.data.batch_size,
      flops_per_step=throughput.step_flops(
          step, fresh, supervised.train_batch_shapes(config.data, data_mesh)),
      learning_rates=rates,
      eval_fn=evaluator.in_training(config, network, eval_source, samples=config.samples,
                                    seed=config.seed + 1))

  evaluation = evaluator.score_colorizers(
      config, {'generator': network.predictor(trained)}, eval_source, samples=config.samples,
      seed=config.seed + 1)
  if not distributed.is_main():
    return
  report.save_metrics(workdir, evaluation.metrics, evaluation.per_image)
  print(f'report: {_write_report(config, workdir, evaluation)}')


NETWORKS = {'writeup': "the write-up's networks (BT.601 YUV)",
            'authors': "the authors' released networks (ccyyatnet/COLORGAN, scaled YCbCr)"}


JND = 2.3  # ab distance of a just noticeable colour difference (Sharma 2003, Delta E 1976)


def _diversity_section(evaluation, samples):
  """The diversity with its bootstrap interval over images, and whether it is noticeable:
  a distance is never negative, so the question is not 'above 0' but 'above one JND'."""
  interval = stats.bootstrap(evaluation.per_image['generator'], summarize)['diversity']
  cell = report.interval_cell({k: v - JND for k, v in interval.items()}, '{:+.2f}')
  noticeable = ('noticeable' if interval['low'] > JND else 'not noticeable'
                if interval['high'] < JND else 'not distinguishable from one JND')
  return [f"Diversity {interval['value']:.2f} [{interval['low']:.2f}, {interval['high']:.2f}] "
          f'(95% bootstrap interval over the {evaluation.images} images, {samples} samples '
          f'each); minus one just noticeable difference ({JND} in ab): {cell}. The samples of '
          f'one input differ in a way that is {noticeable}.']


def _write_report(config, workdir, evaluation):
  history = metrics_log.read_metrics(workdir)
  loss_name = {'bce': 'non-saturating BCE', 'wgan': f'WGAN, weights clipped to ±{config.clip}',
               'wgan_gp': f'WGAN-GP (λ = {config.gp_weight})'}[config.adversarial]
  sections = [
      f"{NETWORKS[config.get('networks', 'writeup')]}; {loss_name}, {config.n_critic} critic "
      f'update(s) per generator update, noise before the first {config.noise_layers} conv(s), '
      f'L1 weight {config.l1_weight}; data `{config.data.source}` at '
      f"{config.data.crop}x{config.data.crop}, {history[-1]['step'] + 1} steps of batch "
      f'{config.data.batch_size}; evaluated on '
      f'{report.describe_images(evaluation.images, config.data)}, each with {config.samples} '
      'noise samples.',
      report.metrics_table(evaluation.metrics),
      'Diversity: mean ab distance (Lab units) between two samples of the same input, over '
      'all pairs of samples and pixels; 0 means the noise is ignored. The other metrics are '
      'those of the first sample against the truth. ' + report.METRICS_NOTE,
      *_diversity_section(evaluation, config.samples),
  ]
  if evaluation.grid:
    report.save_image_grid(workdir / 'samples.png', evaluation.grid,
                           ['input (Y)'] + [f'sample {i + 1}' for i in range(config.samples)]
                           + ['truth'])
    sections += ['## Samples', 'Each row is one input; the columns are samples with '
                 'different noise, then the truth.', '![samples](samples.png)']
  steps = [row['step'] for row in history]
  report.save_curves(workdir / 'loss_curves.png', {
      'discriminator': [(steps, [row['d_loss'] for row in history], 'D loss')],
      'generator': [(steps, [row['g_loss'] for row in history], 'G loss')]},
      ylabel='loss', log_y=False)
  sections += ['## Training losses', '![losses](loss_curves.png)']
  sections += report.eval_curve_sections(
      workdir, {'generator': metrics_log.read_metrics(workdir, metrics_log.EVAL_FILE)})
  return report.write_report(workdir, 'YUV conditional GAN (Cao et al. 2017)', sections)
