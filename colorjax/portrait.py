"""The U-Net of the portrait write-up, two ways: gray -> RGB (3 outputs) and L -> ab (2
outputs, L given), each trained with MAE in its own workdir, then evaluated on the same
images in one report. Both take the same input, L / 100, so the comparison isolates what the
network must predict.
"""

import json
import pathlib

import jax.numpy as jnp

from colorjax import color, colorize, distributed, evaluate, losses, report, supervised, train
from colorjax.errors import UsageError
from colorjax.models.unet import UNet

SHIFTED = color.NORMALIZATIONS['shifted']  # L / 100, (ab + 128) / 255: the write-up's scaling
TASKS = {  # name -> (output channels, loss, (true Lab, output) -> RGB, description)
    'gray2rgb': (3, losses.rgb_regression, lambda lab, rgb: rgb, 'gray -> RGB'),
    'l2ab': (2, lambda model, norm: losses.ab_regression(model, norm, error='absolute'),
             lambda lab, ab: color.lab_to_rgb(
                 jnp.concatenate([lab[..., :1], SHIFTED.denormalize_ab(ab)], axis=-1)),
             'L -> ab'),
}


def _check(config):
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


def _make_evaluator(config, variables_by_task):
  """jitted batch -> ({task: batch sums}, panels [gray, one prediction per task, truth])."""
  models = {task: UNet(TASKS[task][0]) for task in config.tasks}

  def evaluate_batch(variables_by_task, batch):
    lab = losses.lab_from_uint8(batch['rgb'])
    rgb_true = color.lab_to_rgb(lab)
    sums, predictions = {}, []
    for task, model in models.items():
      output = model.apply(variables_by_task[task], SHIFTED.normalize(lab)[..., :1])
      rgb = jnp.clip(TASKS[task][2](lab, output), 0.0, 1.0)
      sums[task] = evaluate.batch_sums(color.rgb_to_lab(rgb)[..., 1:], lab[..., 1:], rgb,
                                       rgb_true, batch['mask'])
      predictions.append(rgb)
    panels = jnp.stack([evaluate.gray_panel(lab), *predictions, rgb_true], axis=1)
    return sums, panels

  return supervised.jit_with(evaluate_batch, variables_by_task)


def main(config, workdir):
  _check(config)
  workdir = pathlib.Path(workdir)
  variables_by_task = {}
  for task in config.tasks:
    outputs, loss, _, _ = TASKS[task]
    model = UNet(outputs, dropout=config.dropout)
    state = supervised.fit_network(config, workdir / task, model, loss(model, SHIFTED),
                                   description=f'unet {task}')
    variables_by_task[task] = supervised.variables(state)
  metrics, grid, eval_source = supervised.evaluate_on_source(
      config, _make_evaluator(config, variables_by_task))
  if not distributed.is_main():
    return
  (workdir / 'metrics_eval.json').write_text(json.dumps(metrics, indent=2) + '\n')
  print(f'report: {_write_report(config, workdir, metrics, grid, eval_source)}')


def colorizer(config, workdir, options) -> colorize.Trained:
  """The L -> ab network when the run trained it (the write-up's better one), else gray ->
  RGB; --network picks."""
  task = colorize.choose(options, list(config.tasks),
                         'l2ab' if 'l2ab' in config.tasks else config.tasks[0])
  outputs, _, to_rgb, _ = TASKS[task]
  model = UNet(outputs, dropout=config.dropout)

  def predict(state, lab, keys):
    output = model.apply(supervised.variables(state), SHIFTED.normalize(lab)[..., :1])
    return color.rgb_to_lab(jnp.clip(to_rgb(lab, output), 0.0, 1.0))[None, ..., 1:]

  return colorize.Trained(workdir / task, lambda: supervised.initial_state(config, model),
                          predict, (config.data.crop, config.data.crop))


def _verdict(metrics):
  if set(metrics) != set(TASKS):
    return []
  rgb, ab = metrics['gray2rgb'], metrics['l2ab']
  wins = [name for name, better in (('PSNR', ab['psnr'] > rgb['psnr']),
                                    ('ab-std ratio', ab['ab_std_ratio'] > rgb['ab_std_ratio']),
                                    ('AuC', ab['auc'] > rgb['auc'])) if better]
  agree = 'agree' if len(wins) >= 2 else 'do not agree'
  return [f"L -> ab beats gray -> RGB on {len(wins)} of 3 (PSNR, ab-std ratio, AuC"
          f"{': wins on ' + ', '.join(wins) if wins else ''}): these runs {agree} with the "
          'write-up that predicting two channels with L given beats predicting three.']


def _write_report(config, workdir, metrics, grid, eval_source):
  header = ['task', 'PSNR (dB)', 'colourfulness pred / true', 'ab std pred / true',
            'ab-std ratio', 'AuC', 'per-image ab variance pred / true']
  rows = [[TASKS[task][3], f"{m['psnr']:.2f}",
           f"{m['colourfulness_pred']:.1f} / {m['colourfulness_true']:.1f}",
           f"{m['ab_std_pred']:.2f} / {m['ab_std_true']:.2f}", f"{m['ab_std_ratio']:.3f}",
           f"{m['auc']:.4f}", f"{m['image_ab_var_pred']:.1f} / {m['image_ab_var_true']:.1f}"]
          for task, m in metrics.items()]
  curves = []
  for task in metrics:
    history = train.read_metrics(workdir / task)
    curves.append(([r['step'] for r in history], [r['loss'] for r in history], TASKS[task][3]))
  sections = [
      f'U-Net (16-32-64-128-256, dropout {config.dropout}), MAE, {config.optimizer.name} lr '
      f'{config.optimizer.learning_rate}, data `{config.data.source}` '
      f'({config.data.crop}x{config.data.crop} crops, batch {config.data.batch_size}, '
      f'{len(curves[0][0])} steps); evaluated on {eval_source.num_examples} held-out images '
      '(for `samples` these are the training photos: a smoke test only). Both tasks see L / '
      '100; L -> ab predicts (ab + 128) / 255 and keeps the true L.',
      report.markdown_table(header, rows), *_verdict(metrics)]
  if grid:
    report.save_image_grid(workdir / 'samples.png', grid,
                           ['input (L)', *[TASKS[t][3] for t in metrics], 'truth'])
    sections += ['## Samples', '![samples](samples.png)']
  report.save_curves(workdir / 'loss_curves.png', {'training MAE': curves}, ylabel='MAE')
  sections += ['## Training loss', '![loss](loss_curves.png)']
  return report.write_report(workdir, 'U-Net: gray -> RGB against L -> ab', sections)
