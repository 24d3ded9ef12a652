"""The flower write-up's ResNet-18 colorizer, in three stages with a workdir each:
(1) `classifier/`: ResNet-18 on L classifies Oxford Flowers-102 (validation top-1 reported);
(2) `pretrained/`: the colorizer starts from stage 1's encoder (its Orbax checkpoint, the
    classifier head dropped) and learns ab with MSE;
(3) `scratch/`: the same colorizer from random weights, where the write-up saw a collapse to
    one colour, measured here by the ab-std ratio, colorfulness and per-image ab variance.
Experiment: flowers_resnet.
"""

import pathlib

import jax.numpy as jnp

from colorjax import color, configs, distributed, precision, xla_cpu
from colorjax.data import sources
from colorjax.errors import UsageError
from colorjax.eval import evaluator, report
from colorjax.families import flowers_resnet as family
from colorjax.families.flowers_resnet import COLORIZERS, SHIFTED
from colorjax.families.spec import Options
from colorjax.models.resnet import ENCODER_STRIDE, ResNetClassifier, load_encoder
from colorjax.train import init_from, losses, metrics_log, optim, supervised


def check(config):
  configs.check_values(config)
  optim.check_blocks(config)
  precision.compute_dtype(config)
  for stage in ('classifier', 'colorizer'):
    supervised.check_stage(config[stage], f'{stage}.')
    init_from.refuse(config[stage], 'flowers_resnet compares a colorizer that starts from '
                     'its own classifier with one from scratch', f'{stage}.')
    crop = config[stage].data.crop
    if crop % ENCODER_STRIDE:
      raise UsageError(f'--config.{stage}.data.crop={crop} must be a multiple of '
                       f'{ENCODER_STRIDE} (ResNet-18 halves the size five times)')


def _classifier(config, workdir, eval_source):
  """Stage 1: (trained classifier state, validation top-1 accuracy)."""
  stage = config.classifier
  model = _classifier_network(config)
  state = supervised.fit_network(stage, workdir / 'classifier', model,
                                 losses.classification(model, SHIFTED), description='classifier')

  @xla_cpu.jit
  def score_batch(variables, batch):
    l_in = SHIFTED.normalize_l(color.lab_from_uint8(batch['rgb'])[..., :1])
    correct = jnp.argmax(model.apply(variables, l_in), axis=-1) == batch['label']
    counts = {'correct': batch['mask'] * correct, 'images': batch['mask']}  # per example
    return {'top-1': counts}, jnp.zeros((batch['rgb'].shape[0], 0))

  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  evaluation = evaluator.score_split(
      stage, lambda batch, _: score_batch(variables, batch),
      summarize=lambda t: float(t['correct'] / t['images']), source=eval_source)
  return state, evaluation.metrics['top-1']


def _classifier_network(config) -> ResNetClassifier:
  """Stage 1's network. One compute dtype (config.compute_dtype) serves all three stages, so
  the colorizer runs the encoder in the precision the classifier trained it in."""
  return ResNetClassifier(config.num_classes, dtype=precision.compute_dtype(config))


def _with_encoder_of(classifier_state):
  def init(state):
    return state.replace(params=load_encoder(state.params, classifier_state.params),
                         batch_stats=load_encoder(state.batch_stats,
                                                  classifier_state.batch_stats))
  return init


def main(config, workdir):
  check(config)
  workdir = pathlib.Path(workdir)
  stage = config.colorizer
  classifier_eval = sources.load_source(config.classifier.data, 'eval')
  eval_source = sources.load_source(stage.data, 'eval')
  classifier, accuracy = _classifier(config, workdir, classifier_eval)
  model = family.network(config)
  loss = losses.ab_regression(model, SHIFTED)
  predictors = {}
  for run in COLORIZERS:
    network = family.network_spec(config, workdir, Options(network=run))
    state = supervised.fit_network(
        stage, workdir / run, model, loss,
        init=_with_encoder_of(classifier) if run == 'pretrained' else None,
        description=f'colorizer ({run})', network=network, eval_source=eval_source)
    predictors[run] = network.predictor(state)
  evaluation = evaluator.score_colorizers(stage, predictors, eval_source)
  if not distributed.is_main():
    return
  report.save_metrics(workdir, {**evaluation.metrics, 'classifier_top1': accuracy},
                      evaluation.per_image)
  print(f'report: {_write_report(config, workdir, evaluation, accuracy)}')


def _write_report(config, workdir, evaluation, accuracy):
  stage = config.colorizer
  sections = [
      f"Stage 1, ResNet-18 classifier on L: validation top-1 accuracy "
      f"**{100 * accuracy:.1f}%** ({config.num_classes} classes, data "
      f'`{config.classifier.data.source}`; the write-up reached 91.1%).',
      f'Stages 2 and 3, colorizer (ResNet-18 encoder + upsampling decoder, MSE on (ab + 128) '
      f'/ 255, {stage.optimizer.name} lr {stage.optimizer.learning_rate}, batch '
      f'{stage.data.batch_size}, {stage.data.crop}x{stage.data.crop}): with the classifier\'s '
      f'encoder against from scratch, on '
      f'{report.describe_images(evaluation.images, stage.data)}.',
      report.metrics_table({run: evaluation.metrics[run] for run in COLORIZERS},
                           label=('colorizer',)),
      report.METRICS_NOTE,
      *report.comparison(evaluator.paired_differences(evaluation.per_image,
                                                      [('pretrained', 'scratch')]),
                         f'the {evaluation.images} evaluation images')]
  if evaluation.grid:
    report.save_image_grid(workdir / 'samples.png', evaluation.grid,
                           ['input (L)', 'pretrained encoder', 'from scratch', 'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  panels = {}
  for run in ('classifier', *COLORIZERS):
    history = metrics_log.read_metrics(workdir / run)
    panels[run] = [([r['step'] for r in history], [r['loss'] for r in history], run)]
  report.save_curves(workdir / 'loss_curves.png', panels, ylabel='training loss')
  sections += ['## Training losses', '![losses](loss_curves.png)']
  sections += report.eval_curve_sections(workdir, {
      run: metrics_log.read_metrics(workdir / run, metrics_log.EVAL_FILE) for run in COLORIZERS})
  return report.write_report(workdir, 'ResNet-18 colorizer: pretrained encoder against scratch',
                             sections)
