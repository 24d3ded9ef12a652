"""Evaluation over a held-out split: the one colorization evaluator behind every report, and
the loop that streams any batch evaluator over a split.

A colorization is scored as `run.py colorize` writes it: the network's predictor (the very
function colorjax/inference.py calls) gives ab from the image's L, and color.colorized_uint8
resizes it, joins the image's own L, fits it to the gamut and rounds to 8 bits; the metrics
(colorjax/evaluate.py) compare that with the original photo.
"""

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from colorjax import color, data, distributed, evaluate, quantize, train
from colorjax.program import Predictor, sample_keys


def over_batches(evaluator, batches, num_batches, mesh, report_images,
                 summarize=evaluate.summarize):
  """Stream eval batches through `evaluator(global batch, batch index) -> ({name: sums},
  panels (B, columns, H, W, 3))`: ({name: summarize(totals)}, the panels of the first
  `report_images` real examples, one grid row each). The sums are evaluate.batch_sums, or any
  sums that `summarize` understands."""
  totals, rows = {}, []
  for index, batch in enumerate(tqdm(batches, total=num_batches, desc='evaluate', leave=False,
                                     disable=not distributed.is_main())):
    global_batch = data.to_global(batch, mesh)
    sums, panels = evaluator(global_batch, index)
    for name, batch_sums in distributed.to_host(sums).items():
      totals[name] = evaluate.add_sums(totals.get(name, {}), batch_sums)
    if len(rows) < report_images:  # the same in every process: the gather is collective
      mask, panels = distributed.to_host((global_batch['mask'], panels))
      rows += list(panels[np.flatnonzero(mask)[:report_images - len(rows)]])
  return {name: summarize(total) for name, total in totals.items()}, rows


def evaluate_on_source(stage, evaluator, summarize=evaluate.summarize, source=None):
  """`evaluator` (as over_batches takes it) over the eval split of `stage.data` (or the
  eval `source` loaded before training, where its mistakes belong), at most
  `stage.eval_batches` batches: ({name: metrics}, grid rows, the eval source)."""
  source = source or data.load_source(stage.data, 'eval')
  num_batches = min(stage.eval_batches, data.num_eval_batches(source.num_examples,
                                                              stage.data.eval_batch_size))
  metrics, grid = over_batches(
      evaluator, data.eval_batches(source, stage.data, num_batches), num_batches,
      train.data_mesh(), stage.report_images, summarize)
  return metrics, grid, source


def evaluate_colorizers(stage, predictors, source=None, **options):
  """colorization_evaluator(predictors, **options) over the eval split of `stage.data` (or
  `source`): ({name: metrics}, grid rows, the eval source)."""
  return evaluate_on_source(stage, colorization_evaluator(predictors, **options),
                            source=source)


def colorization_evaluator(predictors: dict[str, tuple[Predictor, object]], *, samples=1,
                           seed=0):
  """A batch evaluator for over_batches that scores each named (predictor, variables) pair.

  Returns jitted (batch, batch index) -> ({name: batch sums}, panels [gray input, each
  predictor's colorization (all `samples` of it), truth]). With samples > 1 (a network that
  samples), the metrics are those of the first sample and 'diversity' compares them all;
  sample s of eval image i draws its noise from (seed, i, s). The rebalanced AuC counts each
  true colour's step-10 ab grid cell (quantize.grid_cell) as a class.
  """
  variables = {name: v for name, (_, v) in predictors.items()}

  def evaluate_batch(variables, batch, batch_index):
    size = batch['rgb'].shape[0]
    lab = color.lab_from_uint8(batch['rgb'])
    lightness, ab_true = lab[..., :1], lab[..., 1:]
    rgb_true = batch['rgb'].astype(jnp.float32) / 255.0
    pixel_class = quantize.grid_cell(ab_true)
    keys = sample_keys(seed, batch_index * size + jnp.arange(size), samples)
    sums, columns = {}, [evaluate.gray_panel(lab)]
    for name, (predict_ab, _) in predictors.items():
      ab_small = jax.vmap(lambda k: predict_ab(variables[name], lightness, k))(keys)
      rgb = color.colorized_uint8(jnp.broadcast_to(lightness, (samples, *lightness.shape)),
                                  ab_small).astype(jnp.float32) / 255.0
      ab = color.rgb_to_lab(rgb)[..., 1:]
      sums[name] = evaluate.batch_sums(ab[0], ab_true, rgb[0], rgb_true, batch['mask'],
                                       pixel_class, quantize.NUM_GRID_CELLS)
      if samples > 1:
        sums[name]['diversity'] = jnp.sum(batch['mask'] * evaluate.diversity(ab))
      columns += list(rgb)
    return sums, jnp.stack([*columns, rgb_true], axis=1)

  jitted = jax.jit(evaluate_batch)
  return lambda batch, batch_index: jitted(variables, batch, batch_index)
