"""The Lab normalization ablation: the tiny CNN learns ab from L on one photo, for every
(normalization scheme, seed) pair, and the report compares the reconstructions.

All runs train together in one compiled program. The schemes differ only in an affine map,
which enters as data (a stacked, vmapped LabNorm); seeds differ only in the initial
parameters. So one jit of `lax.scan(vmap(train_step))` serves every run: one compile,
`steps_per_call` iterations per call, no host round trip in between.

Runs are independent, so the run axis is split over devices with shard_map: each device
trains its own runs and nothing is communicated. (Leaving that split to jit's automatic
partitioner gave wrong kernel gradients on all but the first device for vmapped
convolutions on the XLA CPU backend; tests/test_norm_ablation.py guards against it.)

The report measures what the write-up measured, the RGB distance of each run's
reconstruction (no gamut fitting, no 8-bit rounding), with the same predictor
(families/norm_ablation.py) that `run.py colorize` uses. Experiment: norm_ablation.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from colorjax import color, configs, distributed, mesh, precision, xla_cpu
from colorjax.configs import Loop
from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.eval import metrics, report, stats
from colorjax.families import norm_ablation as family
from colorjax.train import loop, losses, metrics_log, optim, throughput, train_state


def _stack(trees):
  return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def init_states(model, tx, runs):
  """Every run's fresh TrainState, stacked along a leading run axis."""
  keys = jnp.stack([jax.random.PRNGKey(seed) for _, seed in runs])
  l_sample = jnp.zeros(family.L_SAMPLE_SHAPE, jnp.float32)
  return jax.vmap(lambda key: train_state.init_state(model, tx, key, l_sample))(keys)


def _reconstruct(model, params, norm, lab):
  """Colorize with one run's params; returns (loss in the scheme's units, RGB in [0, 1])."""
  ab_pred = family.predict_ab(model, norm, params, lab[..., :1])
  loss = jnp.mean(((ab_pred - lab[..., 1:]) / norm.scale[1:]) ** 2)  # the scheme's units
  rgb = color.lab_to_rgb(jnp.concatenate([lab[..., :1], ab_pred], axis=-1))
  return loss, rgb[0]


def check(config):
  configs.check_values(config)
  optim.check_blocks(config)
  runs = family.list_runs(config)
  precision.compute_dtype(config)
  Loop.from_config(config).check(evaluates=False)
  if jax.process_count() > 1 and len(runs) % jax.device_count():
    raise UsageError(f'{len(runs)} runs do not split over the {jax.device_count()} devices of '
                     f'{jax.process_count()} processes: pass schemes x seeds that do')
  images.load_image(config.image, config.image_scale)


def main(config, workdir):
  check(config)
  runs = family.list_runs(config)
  image = images.load_image(config.image, config.image_scale)
  model = family.network(config)
  tx = optim.make_optimizer(config.optimizer)

  # The largest number of devices that divides the runs evenly.
  run_mesh = mesh.data_mesh(jax.devices()[:math.gcd(len(runs), jax.device_count())])
  per_run = NamedSharding(run_mesh, P('data'))
  # The photo in Lab, converted once: inside the loop XLA fused the conversion into every
  # run's normalization (13 of 57 ms a step for 25 runs at 100x150).
  batch = jax.device_put({'lab': jax.jit(color.lab_from_uint8)(image[None])},
                         NamedSharding(run_mesh, P()))
  norms = jax.device_put(_stack([color.NORMALIZATIONS[s] for s, _ in runs]), per_run)
  state = jax.jit(lambda: init_states(model, tx, runs), out_shardings=per_run)()

  def run_step(state, norm, batch):
    return train_state.make_train_step(losses.ab_regression(model, norm), tx)(state, batch)

  def advance(state, norms, batch):
    step_all = jax.vmap(run_step, in_axes=(0, 0, None))
    return jax.lax.scan(lambda s, _: step_all(s, norms, batch), state, None,
                        length=config.steps_per_call)

  advance_per_device = jax.shard_map(advance, mesh=run_mesh,
                                     in_specs=(P('data'), P('data'), P()),
                                     out_specs=(P('data'), P(None, 'data')))
  advance_donating = xla_cpu.jit(advance_per_device, donate_argnums=0)
  # One step of every run: a scan's body counts once in XLA's estimate, whatever its length.
  flops = throughput.step_flops(xla_cpu.jit(jax.vmap(run_step, in_axes=(0, 0, None))), state,
                                norms, batch)
  started = time.perf_counter()
  # No held-out split here (the report scores the photo the runs learn): eval_every does
  # not apply. Each step colours the photo once per run.
  state = loop.fit(
      workdir, state, lambda s, step: advance_donating(s, norms, batch), Loop.from_config(config),
      description=f'{len(runs)} runs', images_per_step=len(runs), flops_per_step=flops,
      learning_rates={'learning_rate': optim.learning_rate_at(config.optimizer)})
  seconds = time.perf_counter() - started

  reconstruct = jax.jit(jax.vmap(lambda p, n, lab: _reconstruct(model, p, n, lab),
                                 in_axes=(0, 0, None)))
  final_loss, rgb_pred = distributed.to_host(reconstruct(state.params, norms, batch['lab']))
  if not distributed.is_main():
    return
  rgb_true = image.astype(np.float32) / 255.0
  results = {
      'loss': final_loss,
      'distance': np.asarray(metrics.squared_distance(rgb_pred, rgb_true)),
      'psnr': np.asarray(metrics.psnr(rgb_pred, rgb_true)),
  }
  path = _write_report(config, workdir, runs, image, rgb_pred, results, seconds, run_mesh.size)
  print(f'report: {path}')


def _against_none(results, by_scheme, seeds):
  """Paired over seeds (seed s of a scheme against seed s of `none`: the same initial
  weights up to the scheme), the differences of distance and PSNR with bootstrap intervals."""
  columns = (('distance', 'distance', '{:+.1f}'), ('PSNR (dB)', 'psnr', '{:+.2f}'))
  differences = {}
  for scheme, index in by_scheme.items():
    if scheme != 'none':
      differences[f'`{scheme}`', '`none`'] = {
          key: stats.paired_difference(
              stats.seed_values(results[key][index]),
              stats.seed_values(results[key][by_scheme['none']]), stats.mean_over_items)['mean']
          for _, key, _ in columns}
  if len(seeds) < stats.MIN_ITEMS:
    return [*report.comparison(differences, 'the one seed', columns),
            "The write-up's finding, normalized training reconstructs better than `none`, is "
            'untested with one seed: pass two or more, e.g. --config.seeds=0,1,2,3,4.']
  better = [a for (a, _), d in differences.items()
            if d['distance']['high'] < 0 and d['psnr']['low'] > 0]
  others = [a for a, _ in differences if a not in better]
  return [*report.comparison(differences, f'the {len(seeds)} seeds', columns),
          "The write-up's finding, normalized training reconstructs better than `none`, holds "
          'here (lower distance and higher PSNR, both distinguishable) for '
          f"{', '.join(better) or 'no scheme'}"
          f"{'; not for ' + ', '.join(others) if others else ''}. "
          f'With {len(seeds)} seeds the intervals are coarse: a difference is distinguishable '
          'only when nearly every seed agrees.']


def _write_report(config, workdir, runs, image, rgb_pred, results, seconds, num_devices):
  schemes, seeds = list(config.schemes), list(config.seeds)
  by_scheme = {s: [i for i, (scheme, _) in enumerate(runs) if scheme == s] for s in schemes}
  rows = [[f'`{s}`', report.mean_std(results['loss'][idx]),
           report.mean_std(results['distance'][idx], '{:.1f}'),
           report.mean_std(results['psnr'][idx], '{:.2f}')] for s, idx in by_scheme.items()]
  h, w = image.shape[:2]
  history = metrics_log.read_metrics(workdir)
  sections = [
      f"Tiny CNN (c={config.channels}) learns ab from L of `{config.image}` at {h}x{w}, "
      f"MSE on ab in each scheme's units, {config.optimizer.name} lr "
      f"{config.optimizer.learning_rate}, {history[-1]['step'] + 1} iterations, seeds {seeds}. "
      f"{'Mean ± std over seeds' if len(seeds) > 1 else 'One seed'}. Distance: sum over "
      'pixels and channels of the squared RGB difference to the original (RGB in [0, 1]); '
      'lower is better. Training took '
      f"{seconds:.1f} s in this invocation on {num_devices} {jax.default_backend()} device(s).",
      report.markdown_table(['scheme', "final loss (scheme's units)", 'distance', 'PSNR (dB)'],
                            rows),
  ]
  if 'none' in by_scheme and len(schemes) > 1:
    sections += ['## Each scheme against `none`', *_against_none(results, by_scheme, seeds)]
  first_seed = [by_scheme[s][0] for s in schemes]
  report.save_image_row(workdir / 'reconstructions.png',
                        [image] + [np.clip(rgb_pred[i], 0, 1) for i in first_seed],
                        ['original'] + [f'{s} (seed {seeds[0]})' for s in schemes])
  steps = [m['step'] for m in history]
  losses_by_run = np.asarray([m['loss'] for m in history]).reshape(len(steps), len(runs))
  report.save_curves(
      workdir / 'loss_curves.png',
      {s: [(steps, losses_by_run[:, i], f'seed {runs[i][1]}') for i in idx]
       for s, idx in by_scheme.items()},
      ylabel="MSE on ab (scheme's units)")
  sections += ['## Reconstructions', '![reconstructions](reconstructions.png)',
               '## Loss curves', '![loss curves](loss_curves.png)']
  return report.write_report(workdir, 'Lab normalization ablation', sections)
