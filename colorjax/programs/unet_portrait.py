"""The U-Net of the portrait write-up, two ways: gray -> RGB (3 outputs) and L -> ab (2
outputs, L given), each trained with MAE in its own workdir, then evaluated on the same
images in one report. Both take the same input, L / 100, so the comparison isolates what the
network must predict. Experiment: unet_portrait.
"""

import pathlib

import jax.numpy as jnp

from colorjax import (color, data, distributed, evaluator, losses, precision, program, report,
                      supervised, train)
from colorjax.errors import UsageError
from colorjax.models.unet import UNet

SHIFTED = color.NORMALIZATIONS['shifted']  # L / 100, (ab + 128) / 255: the write-up's scaling
TASKS = {  # name -> (output channels, loss, (L, output) -> ab in Lab units, description)
    'gray2rgb': (3, losses.rgb_regression,
                 lambda l_nhw1, rgb: color.rgb_to_lab(jnp.clip(rgb, 0.0, 1.0))[..., 1:],
                 'gray -> RGB'),
    'l2ab': (2, lambda model, norm: losses.ab_regression(model, norm, error='absolute'),
             lambda l_nhw1, ab: SHIFTED.denormalize_ab(ab), 'L -> ab'),
}


def check(config):
  supervised.check_stage(config)
  precision.compute_dtype(config)
  unknown = [t for t in config.tasks if t not in TASKS]
  if unknown or not config.tasks:
    raise UsageError(f"--config.tasks={','.join(config.tasks)}: choose from "
                     f"{', '.join(TASKS)}")
  kind, _, path = config.data.source.partition(':')
  if kind == 'npz' and not pathlib.Path(path).expanduser().is_file():
    raise UsageError(
        f"portrait data '{path}' not found: save the PFCN portraits (the write-up's "
        "pfcn_small.npz, arrays train_images and test_images, N x 100 x 75 x 3) there, or pass "
        '--config.data.source=npz:PATH, folder:PATH or samples')


def _model(config, task) -> UNet:
  return UNet(TASKS[task][0], dropout=config.dropout, dtype=precision.compute_dtype(config))


def main(config, workdir):
  check(config)
  workdir = pathlib.Path(workdir)
  train_source = data.load_source(config.data, 'train')
  eval_source = data.load_source(config.data, 'eval')
  predictors = {}
  for task in config.tasks:
    model = _model(config, task)
    trained = colorizer(config, workdir, program.Options(network=task))
    state = supervised.fit_network(config, workdir / task, model, TASKS[task][1](model, SHIFTED),
                                   source=train_source, description=f'unet {task}',
                                   trained=trained, eval_source=eval_source)
    predictors[task] = trained.predictor(state)
  evaluation = evaluator.evaluate_colorizers(config, predictors, eval_source)
  if not distributed.is_main():
    return
  report.save_metrics(workdir, evaluation.metrics, evaluation.per_image)
  print(f'report: {_write_report(config, workdir, evaluation)}')


def colorizer(config, workdir, options) -> program.Trained:
  """The L -> ab network when the run trained it (the write-up's better one), else gray ->
  RGB; --network picks."""
  task = program.choose(options, list(config.tasks),
                        'l2ab' if 'l2ab' in config.tasks else config.tasks[0])
  model = _model(config, task)
  to_ab = TASKS[task][2]

  def predict_ab(variables, l_nhw1, keys):
    del keys  # deterministic
    return to_ab(l_nhw1, model.apply(variables, SHIFTED.normalize_l(l_nhw1)))

  return program.Trained(workdir / task, lambda: supervised.initial_state(config, model),
                         supervised.variables, predict_ab, (config.data.crop, config.data.crop))


def _write_report(config, workdir, evaluation):
  metrics = evaluation.metrics
  curves = []
  for task in config.tasks:
    history = train.read_metrics(workdir / task)
    curves.append(([r['step'] for r in history], [r['loss'] for r in history], TASKS[task][3]))
  sections = [
      f'U-Net (16-32-64-128-256, dropout {config.dropout}), MAE, {config.optimizer.name} lr '
      f'{config.optimizer.learning_rate}, data `{config.data.source}` '
      f'({config.data.crop}x{config.data.crop} crops, batch {config.data.batch_size}, '
      f'{len(curves[0][0])} steps); evaluated on '
      f'{data.describe(evaluation.images, evaluation.source)}. Both tasks see L / 100; L -> '
      'ab predicts (ab + 128) / 255. Both are scored as colorize writes them: with the true '
      'L, so gray -> RGB is judged on its chroma (the ab of its RGB).',
      report.metrics_table({TASKS[t][3]: m for t, m in metrics.items()}, label=('task',)),
      report.METRICS_NOTE]
  if set(metrics) == set(TASKS):
    differences = evaluator.paired_differences(evaluation.per_image, [('l2ab', 'gray2rgb')])
    sections += [
        '## L -> ab against gray -> RGB',
        "The write-up found that predicting two channels with L given beats predicting "
        'three; these runs support it where a difference below is distinguishable and '
        'favours l2ab.',
        *report.comparison(differences, f'the {evaluation.images} evaluation images')]
  if evaluation.grid:
    report.save_image_grid(workdir / 'samples.png', evaluation.grid,
                           ['input (L)', *(TASKS[t][3] for t in metrics), 'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  report.save_curves(workdir / 'loss_curves.png', {'training MAE': curves}, ylabel='MAE')
  sections += ['## Training loss', '![loss](loss_curves.png)']
  sections += report.eval_curve_sections(workdir, {
      TASKS[t][3]: train.read_metrics(workdir / t, train.EVAL_FILE) for t in config.tasks})
  return report.write_report(workdir, 'U-Net: gray -> RGB against L -> ab', sections)
