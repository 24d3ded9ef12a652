"""The flower write-up's ResNet-18 colorizer, in three stages with a workdir each:
(1) `classifier/`: ResNet-18 on L classifies Oxford Flowers-102 (validation top-1 reported);
(2) `pretrained/`: the colorizer starts from stage 1's encoder (its Orbax checkpoint, the
    classifier head dropped) and learns ab with MSE;
(3) `scratch/`: the same colorizer from random weights, where the write-up saw a collapse to
    one colour, measured here by the ab-std ratio, colourfulness and per-image ab variance.
"""

import json
import pathlib

import jax.numpy as jnp

from colorjax import color, colorize, distributed, evaluate, losses, report, supervised, train
from colorjax.errors import UsageError
from colorjax.models.resnet import ENCODER_STRIDE, ResNetClassifier, ResNetColorizer, load_encoder

SHIFTED = color.NORMALIZATIONS['shifted']  # input L / 100; ab as (ab + 128) / 255 in [0, 1]
COLORIZERS = ('pretrained', 'scratch')


def _check(config):
  for stage in ('classifier', 'colorizer'):
    crop = config[stage].data.crop
    if crop % ENCODER_STRIDE:
      raise UsageError(f'--config.{stage}.data.crop={crop} must be a multiple of '
                       f'{ENCODER_STRIDE} (ResNet-18 halves the size five times)')


def _classifier(config, workdir):
  """Stage 1: (trained classifier state, validation top-1 accuracy)."""
  stage = config.classifier
  model = ResNetClassifier(config.num_classes)
  state = supervised.fit_network(stage, workdir / 'classifier', model,
                                 losses.classification(model, SHIFTED), description='classifier')

  def evaluate_batch(variables, batch):
    l_in = SHIFTED.normalize(losses.lab_from_uint8(batch['rgb']))[..., :1]
    correct = jnp.argmax(model.apply(variables, l_in), axis=-1) == batch['label']
    counts = {'correct': jnp.sum(batch['mask'] * correct), 'images': jnp.sum(batch['mask'])}
    return {'top-1': counts}, jnp.zeros((batch['rgb'].shape[0], 0))

  totals = supervised.evaluate_on_source(
      stage, supervised.jit_with(evaluate_batch, supervised.variables(state)),
      summarize=lambda t: float(t['correct'] / t['images']))
  return state, totals[0]['top-1']


def _with_encoder_of(classifier_state):
  def init(state):
    return state.replace(params=load_encoder(state.params, classifier_state.params),
                         batch_stats=load_encoder(state.batch_stats,
                                                  classifier_state.batch_stats))
  return init


def predict_ab(model, variables, lab):
  """ab in Lab units from the L of `lab`, by a trained colorizer."""
  return SHIFTED.denormalize_ab(model.apply(variables, SHIFTED.normalize(lab)[..., :1]))


def _make_evaluator(variables_by_run):
  """jitted batch -> ({run: batch sums}, panels [gray, pretrained, scratch, truth])."""
  model = ResNetColorizer()

  def evaluate_batch(variables_by_run, batch):
    lab = losses.lab_from_uint8(batch['rgb'])
    rgb_true = color.lab_to_rgb(lab)
    sums, predictions = {}, []
    for run, variables in variables_by_run.items():
      ab = predict_ab(model, variables, lab)
      rgb = color.lab_to_rgb(jnp.concatenate([lab[..., :1], ab], axis=-1))
      sums[run] = evaluate.batch_sums(ab, lab[..., 1:], rgb, rgb_true, batch['mask'])
      predictions.append(rgb)
    return sums, jnp.stack([evaluate.gray_panel(lab), *predictions, rgb_true], axis=1)

  return supervised.jit_with(evaluate_batch, variables_by_run)


def main(config, workdir):
  _check(config)
  workdir = pathlib.Path(workdir)
  classifier, accuracy = _classifier(config, workdir)
  stage = config.colorizer
  model = ResNetColorizer()
  loss = losses.ab_regression(model, SHIFTED)
  variables_by_run = {}
  for run in COLORIZERS:
    state = supervised.fit_network(
        stage, workdir / run, model, loss,
        init=_with_encoder_of(classifier) if run == 'pretrained' else None,
        description=f'colorizer ({run})')
    variables_by_run[run] = supervised.variables(state)
  metrics, grid, eval_source = supervised.evaluate_on_source(stage,
                                                             _make_evaluator(variables_by_run))
  if not distributed.is_main():
    return
  metrics['classifier_top1'] = accuracy
  (workdir / 'metrics_eval.json').write_text(json.dumps(metrics, indent=2) + '\n')
  print(f'report: {_write_report(config, workdir, metrics, grid, eval_source)}')


def colorizer(config, workdir, options) -> colorize.Trained:
  """The colorizer with the classifier's encoder, or --network=scratch."""
  run = colorize.choose(options, COLORIZERS, 'pretrained')
  model = ResNetColorizer()
  stage = config.colorizer
  return colorize.Trained(
      workdir / run, lambda: supervised.initial_state(stage, model),
      lambda state, lab, keys: predict_ab(model, supervised.variables(state), lab)[None],
      (stage.data.crop, stage.data.crop))


def _write_report(config, workdir, metrics, grid, eval_source):
  stage = config.colorizer
  header = ['colorizer', 'PSNR (dB)', 'colourfulness pred / true', 'ab std pred / true',
            'ab-std ratio', 'per-image ab variance pred / true', 'AuC']
  rows = [[run, f"{m['psnr']:.2f}",
           f"{m['colourfulness_pred']:.1f} / {m['colourfulness_true']:.1f}",
           f"{m['ab_std_pred']:.2f} / {m['ab_std_true']:.2f}", f"{m['ab_std_ratio']:.3f}",
           f"{m['image_ab_var_pred']:.1f} / {m['image_ab_var_true']:.1f}", f"{m['auc']:.4f}"]
          for run, m in ((r, metrics[r]) for r in COLORIZERS)]
  sections = [
      f"Stage 1, ResNet-18 classifier on L: validation top-1 accuracy "
      f"**{100 * metrics['classifier_top1']:.1f}%** ({config.num_classes} classes, data "
      f'`{config.classifier.data.source}`; the write-up reached 91.1%).',
      f'Stages 2 and 3, colorizer (ResNet-18 encoder + upsampling decoder, MSE on (ab + 128) '
      f'/ 255, {stage.optimizer.name} lr {stage.optimizer.learning_rate}, batch '
      f'{stage.data.batch_size}, {stage.data.crop}x{stage.data.crop}): with the classifier\'s '
      f'encoder against from scratch, on {eval_source.num_examples} held-out images (for '
      '`samples` these are the training photos: a smoke test only).',
      report.markdown_table(header, rows),
      'A colorizer that collapses to one colour per image has a per-image ab variance near 0 '
      'and an ab-std ratio far below 1.']
  if grid:
    report.save_image_grid(workdir / 'samples.png', grid,
                           ['input (L)', 'pretrained encoder', 'from scratch', 'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  panels = {}
  for run in ('classifier', *COLORIZERS):
    history = train.read_metrics(workdir / run)
    panels[run] = [([r['step'] for r in history], [r['loss'] for r in history], run)]
  report.save_curves(workdir / 'loss_curves.png', panels, ylabel='training loss')
  sections += ['## Training losses', '![losses](loss_curves.png)']
  return report.write_report(workdir, 'ResNet-18 colorizer: pretrained encoder against scratch',
                             sections)
