"""The U-Net of the portrait write-up, two ways: gray -> RGB (3 outputs) and L -> ab (2
outputs, L given), each trained with MAE in its own workdir, then evaluated on the same
images in one report. Both take the same input, L / 100, so the comparison isolates what the
network must predict. Experiment: unet_portrait.
"""

import pathlib

from colorjax import configs, distributed, precision
from colorjax.data import sources
from colorjax.errors import UsageError
from colorjax.eval import evaluator, report
from colorjax.families import unet_portrait as family
from colorjax.families.spec import Options
from colorjax.train import init_from, losses, metrics_log, optim, supervised

# Each task's loss (MAE), on its output in the family's units (families/unet_portrait.TASKS).
LOSSES = {
    'gray2rgb': lambda model: losses.rgb_regression(model, family.SHIFTED),
    'l2ab': lambda model: losses.ab_regression(model, family.SHIFTED, error='absolute'),
}


def check(config):
  configs.check_values(config)
  optim.check_blocks(config)
  kind, _, path = config.data.source.partition(':')
  if kind == 'npz' and not sources.local_path(kind, path).is_file():
    raise UsageError(
        f"portrait data '{path}' not found: save the PFCN portraits (the write-up's "
        "pfcn_small.npz, arrays train_images and test_images, N x 100 x 75 x 3) there, or pass "
        '--config.data.source=npz:PATH, folder:PATH or samples')
  supervised.check_stage(config)
  precision.compute_dtype(config)
  unknown = [t for t in config.tasks if t not in family.TASKS]
  if unknown or not config.tasks:
    raise UsageError(f"--config.tasks={','.join(config.tasks)}: choose from "
                     f"{', '.join(family.TASKS)}")


def main(config, workdir):
  check(config)
  workdir = pathlib.Path(workdir)
  networks = {task: family.network_spec(config, workdir, Options(network=task))
              for task in config.tasks}
  inits = {task: init_from.initializer(config, network, task)  # every task's before training
           for task, network in networks.items()}
  train_source = sources.load_source(config.data, 'train')
  eval_source = sources.load_source(config.data, 'eval')
  predictors = {}
  for task, network in networks.items():
    model = family.network(config, task)
    state = supervised.fit_network(config, workdir / task, model, LOSSES[task](model),
                                   source=train_source, init=inits[task],
                                   description=f'unet {task}', network=network,
                                   eval_source=eval_source)
    predictors[task] = network.predictor(state)
  evaluation = evaluator.score_colorizers(config, predictors, eval_source)
  if not distributed.is_main():
    return
  report.save_metrics(workdir, evaluation.metrics, evaluation.per_image)
  print(f'report: {_write_report(config, workdir, evaluation)}')


def _write_report(config, workdir, evaluation):
  metrics = evaluation.metrics
  curves = []
  for task in config.tasks:
    history = metrics_log.read_metrics(workdir / task)
    curves.append(([r['step'] for r in history], [r['loss'] for r in history],
                   family.TASKS[task].description))
  sections = [
      f'U-Net (16-32-64-128-256, dropout {config.dropout}), MAE, {config.optimizer.name} lr '
      f'{config.optimizer.learning_rate}, data `{config.data.source}` '
      f'({config.data.crop}x{config.data.crop} crops, batch {config.data.batch_size}, '
      f'{len(curves[0][0])} steps); evaluated on '
      f'{report.describe_images(evaluation.images, config.data)}. Both tasks see L / 100; L -> '
      'ab predicts (ab + 128) / 255. Both are scored as colorize writes them: with the true '
      'L, so gray -> RGB is judged on its chroma (the ab of its RGB).',
      report.metrics_table({family.TASKS[t].description: m for t, m in metrics.items()},
                           label=('task',)),
      report.METRICS_NOTE]
  if set(metrics) == set(family.TASKS):
    differences = evaluator.paired_differences(evaluation.per_image, [('l2ab', 'gray2rgb')])
    sections += [
        '## L -> ab against gray -> RGB',
        "The write-up found that predicting two channels with L given beats predicting "
        'three; these runs support it where a difference below is distinguishable and '
        'favours l2ab.',
        *report.comparison(differences, f'the {evaluation.images} evaluation images')]
  if evaluation.grid:
    report.save_image_grid(workdir / 'samples.png', evaluation.grid,
                           ['input (L)', *(family.TASKS[t].description for t in metrics),
                            'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  report.save_curves(workdir / 'loss_curves.png', {'training MAE': curves}, ylabel='MAE')
  sections += ['## Training loss', '![loss](loss_curves.png)']
  sections += report.eval_curve_sections(workdir, {
      family.TASKS[t].description: metrics_log.read_metrics(workdir / t, metrics_log.EVAL_FILE)
      for t in config.tasks})
  return report.write_report(workdir, 'U-Net: gray -> RGB against L -> ab', sections)
