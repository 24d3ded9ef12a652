"""Colorful Image Colorization (Zhang et al. 2016) end to end: empirical prior, data-parallel
training of the softmax or regression head, evaluation (with an annealed-mean temperature
sweep for the softmax head), and report.md with an image grid and the loss curve.
Experiments: zhang_softmax, zhang_regression (metrics_eval.json feeds zhang_compare).
"""

import hashlib
import json
import os
import pathlib

import jax
import numpy as np
from tqdm import tqdm

from colorjax import color, configs, distributed, mesh, precision, quantize
from colorjax.data import pipeline, sources
from colorjax.errors import UsageError
from colorjax.eval import evaluator, report
from colorjax.families import zhang as family
from colorjax.families.spec import Options
from colorjax.train import init_from, losses, metrics_log, optim, supervised


def _prior_provenance(config, bins) -> str:
  """What the prior is computed from: the bins, the training data and how much of it."""
  data_fields = {k: v for k, v in config.data.items() if k not in ('eval_batch_size',)}
  return json.dumps({'bins': hashlib.sha256(np.ascontiguousarray(bins, np.float64)).hexdigest(),
                     'data': data_fields, 'prior_batches': config.prior_batches},
                    sort_keys=True, default=str)


def _prior(config, workdir, source, bins, data_mesh):
  """Smoothed bin distribution of `prior_batches` training batches, cached in the workdir
  (prior.npz) with what it was computed from; a cache made from other data or bins is
  computed again."""
  path = pathlib.Path(workdir) / 'prior.npz'
  provenance = _prior_provenance(config, bins)
  if path.exists():
    with np.load(path) as cached:
      if str(cached['provenance']) == provenance:
        return cached['prior']
    if distributed.is_main():
      tqdm.write(f'{path} was computed from other data or bins: computing it again')
  count = jax.jit(lambda rgb: quantize.count_bins(
      color.lab_from_uint8(rgb)[:, ::4, ::4, 1:], bins))
  batches = pipeline.train_batches(source, config.data)
  counts = np.zeros(len(bins))
  for _ in tqdm(range(config.prior_batches), desc='empirical prior', leave=False,
                disable=not distributed.is_main()):
    counts += np.asarray(count(pipeline.to_global(next(batches), data_mesh)['rgb']))
  prior = quantize.empirical_prior(counts, bins)
  if distributed.is_main():
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix('.tmp.npz')
    np.savez(temporary, prior=prior, provenance=np.asarray(provenance))
    os.replace(temporary, path)  # atomic: a kill never leaves half a prior
  return prior


def check(config):
  configs.check_values(config)
  optim.check_blocks(config)
  supervised.check_stage(config)
  precision.compute_dtype(config)
  if config.head not in ('softmax', 'regression'):
    raise UsageError(f"--config.head={config.head!r}: use 'softmax' or 'regression'")
  if config.data.crop % family.STRIDE:
    raise UsageError(f'--config.data.crop={config.data.crop} must be a multiple of 8 (the '
                     'network works at 1/8 resolution)')
  if config.head == 'softmax' and not (config.temperatures and all(
      0 < t < float('inf') for t in config.temperatures)):
    raise UsageError(f'--config.temperatures={",".join(map(str, config.temperatures))}: give '
                     'one or more positive annealed-mean temperatures, e.g. 0.38')
  if config.head == 'softmax' and not 0 < config.get('temperature', 1.0) < float('inf'):
    raise UsageError(f'--config.temperature={config.temperature} must be a positive number')


def _same_bins(config, bins):
  """init_from's check of a softmax run: a head's outputs are its bins, so the run it starts
  from must have decoded with the same ones."""
  def check_source(their_config, their_workdir):
    if config.head != 'softmax' or their_config.get('head') != 'softmax':
      return  # another head: the shapes differ (init_from names them)
    theirs = family.bins(their_config, their_workdir)
    if theirs.shape == bins.shape and np.allclose(theirs, bins, atol=1e-3):
      return
    local = their_workdir / their_config.bins
    fix = local if their_config.bins and local.is_file() else their_config.bins or "''"
    raise UsageError(f'--config.init_from={config.init_from} decodes with its own '
                     f'{len(theirs)} bins, this run with {len(bins)} other ones: pass '
                     f'--config.bins={fix}')
  return check_source


def main(config, workdir):
  check(config)
  workdir = pathlib.Path(workdir)
  bins = family.bins(config, workdir)
  network = family.network_spec(config, workdir, Options())
  init = init_from.initializer(config, network,  # checked before the prior is written
                               check_source=_same_bins(config, bins))
  train_source = sources.load_source(config.data, 'train')
  eval_source = sources.load_source(config.data, 'eval')
  prior = _prior(config, workdir, train_source, bins, mesh.data_mesh())

  model = family.network(config, bins)
  if config.head == 'softmax':
    loss_fn = losses.rebalanced_soft_cross_entropy(
        model, bins, quantize.rebalancing_weights(prior, config.rebalance_mix),
        config.data.gray_threshold)
  else:
    loss_fn = losses.quarter_ab_regression(model, config.data.gray_threshold)
  state = supervised.fit_network(config, workdir, model, loss_fn, source=train_source,
                                 init=init, description=f'zhang {config.head}',
                                 network=network, eval_source=eval_source)

  temperatures = (dict.fromkeys([*config.temperatures, config.temperature])  # the default too
                  if config.head == 'softmax' else (None,))
  predictors = {}
  for temperature in temperatures:
    predictors[_decoding_name(temperature)] = family.network_spec(
        config, workdir, Options(temperature=temperature)).predictor(state)
  evaluation = evaluator.score_colorizers(config, predictors, eval_source)
  if not distributed.is_main():
    return
  default = _decoding_name(config.temperature if config.head == 'softmax' else None)
  report.save_metrics(workdir, evaluation.metrics,
                      {default: evaluation.per_image[default]})  # what zhang_compare pairs
  path = _write_report(config, workdir, evaluation, train_source)
  print(f'report: {path}')


def _decoding_name(temperature):
  return 'regression' if temperature is None else f'T={temperature:g}'


def _write_report(config, workdir, evaluation, train_source):
  history = metrics_log.read_metrics(workdir)
  metrics, eval_source = evaluation.metrics, evaluation.source
  sections = [
      f'{config.head} head, width {config.width}, data `{config.data.source}` '
      f'({config.data.crop}x{config.data.crop} crops, batch {config.data.batch_size}), '
      f"{history[-1]['step'] + 1} steps of {config.optimizer.name} lr "
      f'{config.optimizer.learning_rate}; evaluated on '
      f'{report.describe_images(evaluation.images, config.data)}.',
      report.metrics_table(metrics, label=('decoding',)),
      report.METRICS_NOTE,
  ]
  if train_source.skipped or eval_source.skipped:
    sections.append('Skipped files (unreadable or over the pixel budget): '
                    f'{len(train_source.skipped)} (train), {len(eval_source.skipped)} (eval).')
  if evaluation.grid:
    report.save_image_grid(workdir / 'samples.png', evaluation.grid,
                           ['input (L)', *metrics, 'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  report.save_curves(workdir / 'loss_curve.png',
                     {'training loss': [([m['step'] for m in history],
                                         [m['loss'] for m in history], config.head)]},
                     ylabel='loss')
  sections += ['## Training loss', '![loss](loss_curve.png)']
  sections += report.eval_curve_sections(
      workdir, {_decoding_name(config.temperature if config.head == 'softmax' else None):
                metrics_log.read_metrics(workdir, metrics_log.EVAL_FILE)})
  return report.write_report(workdir, f'Zhang et al. 2016, {config.head} head', sections)
