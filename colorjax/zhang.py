"""Colorful Image Colorization (Zhang et al. 2016) end to end: empirical prior, data-parallel
training of the softmax or regression head, evaluation (with an annealed-mean temperature
sweep for the softmax head), and report.md with an image grid and the loss curve.

The report's metrics also go to metrics_eval.json, which the zhang_compare experiment reads.
"""

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from colorjax import (color, colorize, data, distributed, evaluate, losses, quantize, report,
                      supervised, train)
from colorjax.errors import UsageError
from colorjax.models.zhang import ZhangNet


def _prior(config, workdir, source, bins, mesh):
  """Smoothed bin distribution of `prior_batches` training batches, cached in the workdir."""
  path = pathlib.Path(workdir) / 'prior.npy'
  if path.exists():
    return np.load(path)
  count = jax.jit(lambda rgb: quantize.count_bins(
      losses.lab_from_uint8(rgb)[:, ::4, ::4, 1:], bins))
  batches = data.train_batches(source, config.data)
  counts = np.zeros(len(bins))
  for _ in tqdm(range(config.prior_batches), desc='empirical prior', leave=False,
                disable=not distributed.is_main()):
    counts += np.asarray(count(data.to_global(next(batches), mesh)['rgb']))
  prior = quantize.empirical_prior(counts, bins)
  if distributed.is_main():
    temporary = path.with_suffix('.tmp.npy')
    np.save(temporary, prior)
    os.replace(temporary, path)  # atomic: a kill never leaves half a prior
  return prior


def _decodings(config):
  if config.head == 'softmax':
    return {f'T={t:g}': t for t in config.temperatures}
  return {'regression': None}


def _shown_decoding(config):
  """The decoding whose images the sample grid shows: the paper's T = 0.38 when swept."""
  names = list(_decodings(config))
  return 'T=0.38' if 'T=0.38' in names else names[0]


def _network(config, bins) -> ZhangNet:
  return ZhangNet(len(bins) if config.head == 'softmax' else 2, config.width)


def decode_ab(output, bins, temperature):
  """The network's output -> ab at 1/4 resolution: the annealed mean at `temperature` of the
  softmax head's distribution, or the regression head's output itself (temperature None)."""
  return output if temperature is None else quantize.annealed_mean(output, bins, temperature)


def _make_evaluator(model, bins, prior, config, variables):
  """jitted batch -> ({decoding: batch sums}, panels [gray, prediction, truth])."""
  inverse_frequency = jnp.asarray(quantize.rebalancing_weights(prior, mix=0.0), jnp.float32)
  decodings = _decodings(config)

  def evaluate_batch(variables, batch):
    lab = losses.lab_from_uint8(batch['rgb'])
    output = model.apply(variables, lab[..., :1], train=False)
    ab_true = lab[..., 1:]
    pixel_weight = jax.lax.map(lambda ab: inverse_frequency[quantize.nearest_bin(ab, bins)],
                               ab_true)
    rgb_true = color.lab_to_rgb(lab)
    sums, rgb = {}, {}
    for name, temperature in decodings.items():
      ab_pred = jax.image.resize(decode_ab(output, bins, temperature), ab_true.shape,
                                 'bilinear')
      rgb[name] = color.lab_to_rgb(jnp.concatenate([lab[..., :1], ab_pred], axis=-1))
      sums[name] = evaluate.batch_sums(ab_pred, ab_true, rgb[name], rgb_true, batch['mask'],
                                       pixel_weight)
    panels = jnp.stack([evaluate.gray_panel(lab), rgb[_shown_decoding(config)], rgb_true], 1)
    return sums, panels

  return supervised.jit_with(evaluate_batch, variables)


def main(config, workdir):
  if config.head not in ('softmax', 'regression'):
    raise UsageError(f"--config.head={config.head!r}: use 'softmax' or 'regression'")
  if config.data.crop % 8:
    raise UsageError(f'--config.data.crop={config.data.crop} must be a multiple of 8 (the '
                     'network works at 1/8 resolution)')
  workdir = pathlib.Path(workdir)
  train_source = data.load_source(config.data, 'train')
  bins = quantize.load_bins(config.bins)
  prior = _prior(config, workdir, train_source, bins, train.data_mesh())

  model = _network(config, bins)
  if config.head == 'softmax':
    loss_fn = losses.rebalanced_soft_cross_entropy(
        model, bins, quantize.rebalancing_weights(prior, config.rebalance_mix),
        config.data.gray_threshold)
  else:
    loss_fn = losses.quarter_ab_regression(model, config.data.gray_threshold)
  state = supervised.fit_network(config, workdir, model, loss_fn, source=train_source,
                                 description=f'zhang {config.head}')
  metrics, grid, eval_source = supervised.evaluate_on_source(
      config, _make_evaluator(model, bins, prior, config, supervised.variables(state)))
  if not distributed.is_main():
    return
  (workdir / 'metrics_eval.json').write_text(json.dumps(metrics, indent=2) + '\n')
  path = _write_report(config, workdir, metrics, grid, train_source, eval_source)
  print(f'report: {path}')


def colorizer(config, workdir, options) -> colorize.Trained:
  colorize.single(options, 'zhang')
  bins = quantize.load_bins(config.bins)
  model = _network(config, bins)
  temperature = None
  if config.head == 'softmax':
    temperature = options.temperature or colorize.DEFAULT_TEMPERATURE

  def predict(state, lab, keys):
    output = model.apply(supervised.variables(state), lab[..., :1], train=False)
    return decode_ab(output, bins, temperature)[None]

  return colorize.Trained(
      workdir, lambda: supervised.initial_state(config, model), predict,
      (config.data.crop, config.data.crop),
      frozenset({'temperature'} if config.head == 'softmax' else ()))


def _write_report(config, workdir, metrics, grid, train_source, eval_source):
  header = ['decoding', 'AuC', 'AuC rebalanced', 'PSNR (dB)', 'colourfulness pred / true',
            'ab std pred / true', 'ab-std ratio']
  rows = [[name, f"{m['auc']:.4f}", f"{m['auc_rebalanced']:.4f}", f"{m['psnr']:.2f}",
           f"{m['colourfulness_pred']:.1f} / {m['colourfulness_true']:.1f}",
           f"{m['ab_std_pred']:.2f} / {m['ab_std_true']:.2f}", f"{m['ab_std_ratio']:.3f}"]
          for name, m in metrics.items()]
  sections = [
      f'{config.head} head, width {config.width}, data `{config.data.source}` '
      f'({config.data.crop}x{config.data.crop} crops, batch {config.data.batch_size}), '
      f'{config.num_steps} steps of {config.optimizer.name} lr '
      f'{config.optimizer.learning_rate}; evaluated on {eval_source.num_examples} held-out '
      'images (for `samples` these are the training photos: a smoke test only).',
      report.markdown_table(header, rows),
      'AuC: area under the fraction of pixels with ab error <= t, t in 0..150, normalized to '
      '1 (rebalanced: pixels weighted by inverse bin frequency). ab-std ratio: std of '
      'predicted ab / std of true ab; below 1 means desaturated.',
  ]
  if train_source.skipped or eval_source.skipped:
    sections.append(f'Skipped unreadable files: {len(train_source.skipped)} (train), '
                    f'{len(eval_source.skipped)} (eval).')
  if grid:
    report.save_image_grid(workdir / 'samples.png', grid, ['input (L)', 'prediction', 'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  history = train.read_metrics(workdir)
  report.save_curves(workdir / 'loss_curve.png',
                     {'training loss': [([m['step'] for m in history],
                                         [m['loss'] for m in history], config.head)]},
                     ylabel='loss')
  sections += ['## Training loss', '![loss](loss_curve.png)']
  return report.write_report(workdir, f'Zhang et al. 2016, {config.head} head', sections)
