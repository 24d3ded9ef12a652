"""The evaluator: scores networks over a held-out split, for every report and for the
evaluations while training, by streaming batch scorers over the split.

A colorization is scored as `run.py colorize` writes it: the network's predictor (the very
function colorjax/inference.py calls) gives ab from the image's L, and color.colorized_uint8
resizes it, joins the image's own L, fits it to the gamut and rounds to 8 bits; the metrics
(metrics.py) compare that with the original photo.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from colorjax import color, distributed, mesh, quantize, xla_cpu
from colorjax.data import pipeline, sources
from colorjax.eval import metrics as metrics_lib, stats
from colorjax.families.spec import NetworkSpec, Predictor, sample_keys


class Evaluation(NamedTuple):
  """What an evaluation over a split gives a report."""
  metrics: dict    # {name: summarize(totals over the images)}
  per_image: dict  # {name: {key: (images, ...)}} the sums of every real image, for stats.py
  grid: list       # panels of the first report_images images, one grid row each
  source: object   # the eval sources.Source

  @property
  def images(self) -> int:
    """How many images were scored (at most eval_batches x eval_batch_size of the split)."""
    first = next(iter(self.per_image.values()))
    return len(next(iter(first.values())))


def over_batches(score_batch, batches, num_batches, data_mesh, report_images,
                 summarize=metrics_lib.summarize, source=None) -> Evaluation:
  """Stream eval batches through `score_batch(global batch, batch index) -> ({name: sums of
  each example, leading axis B}, panels (B, columns, H, W, 3))`. Padding examples (mask 0)
  are dropped; the others' sums are kept and added up, and `summarize` turns the totals into
  metrics. The sums are metrics_lib.image_sums, or any that `summarize` understands."""
  per_image, rows = {}, []
  for index, batch in enumerate(tqdm(batches, total=num_batches, desc='evaluate', leave=False,
                                     disable=not distributed.is_main())):
    global_batch = pipeline.to_global(batch, data_mesh)
    sums, panels = score_batch(global_batch, index)
    sums, mask = distributed.to_host((sums, global_batch['mask']))
    real = np.flatnonzero(mask)
    for name, example_sums in sums.items():
      kept = per_image.setdefault(name, {})
      for key, value in example_sums.items():
        kept.setdefault(key, []).append(np.asarray(value)[real])
    if len(rows) < report_images:  # the same in every process: the gather is collective
      panels = distributed.to_host(panels)
      rows += list(panels[real[:report_images - len(rows)]])
  per_image = {name: {k: np.concatenate(v) for k, v in sums.items()}
               for name, sums in per_image.items()}
  metrics = {name: summarize({k: np.sum(v.astype(np.float64), axis=0) for k, v in sums.items()})
             for name, sums in per_image.items()}
  return Evaluation(metrics, per_image, rows, source)


def score_split(stage, score_batch, summarize=metrics_lib.summarize,
                source=None, max_batches=None) -> Evaluation:
  """`score_batch` (as over_batches takes it) over the eval split of `stage.data` (or the
  eval `source` loaded before training, where its mistakes belong), at most `max_batches`
  (default `stage.eval_batches`) batches."""
  source = source or sources.load_source(stage.data, 'eval')
  num_batches = min(max_batches or stage.eval_batches,
                    pipeline.num_eval_batches(source.num_examples, stage.data.eval_batch_size))
  return over_batches(score_batch, pipeline.eval_batches(source, stage.data, num_batches),
                      num_batches, mesh.data_mesh(), stage.report_images, summarize, source)


def score_colorizers(stage, predictors: dict[str, tuple[Predictor, object]], source=None, *,
                     samples=1, seed=0) -> Evaluation:
  """Each named (predictor, variables) pair scored over the eval split of `stage.data` (or
  `source`) by colorization_scorer."""
  score = colorization_scorer({name: p for name, (p, _) in predictors.items()},
                              samples=samples, seed=seed)
  variables = {name: v for name, (_, v) in predictors.items()}
  return score_split(stage, lambda batch, index: score(variables, batch, index),
                     source=source)


def in_training(stage, network: NetworkSpec, source=None, *, samples=1, seed=0):
  """fit's `eval_fn` when `stage.eval_every` > 0 (else None): the training state's
  colorizations of the first `stage.eval_every_batches` eval batches, scored as the final
  evaluation scores them (colorization_scorer) -> (metrics, the panels of the first
  report_images images as one grid image). `network` is the family's spec of the network
  that trains (its predictor, and the variables of a state); it compiles once, for every
  evaluation."""
  if not stage.get('eval_every', 0):
    return None
  source = source or sources.load_source(stage.data, 'eval')
  score = colorization_scorer({'network': network.predict_ab}, samples=samples, seed=seed)

  def score_state(state):
    variables = {'network': network.predictor(state)[1]}
    evaluation = score_split(stage, lambda batch, index: score(variables, batch, index),
                             source=source, max_batches=stage.eval_every_batches)
    grid = [np.concatenate(list(row), axis=1) for row in evaluation.grid]
    return evaluation.metrics['network'], np.concatenate(grid, axis=0) if grid else None

  return score_state


def colorization_scorer(predictors: dict[str, Predictor], *, samples=1, seed=0):
  """Jitted ({name: variables}, batch, batch index) -> ({name: metrics_lib.image_sums}, panels
  [gray input, each predictor's colorization (all `samples` of it), truth]). With samples > 1
  (a network that samples), the metrics are those of the first sample and 'diversity'
  compares them all; sample s of eval image i draws its noise from (seed, i, s). The
  rebalanced AuC counts each true colour's step-10 ab grid cell (quantize.grid_cell) as a
  class.
  """

  def score_batch(variables, batch, batch_index):
    size = batch['rgb'].shape[0]
    lab = color.lab_from_uint8(batch['rgb'])
    lightness, ab_true = lab[..., :1], lab[..., 1:]
    rgb_true = batch['rgb'].astype(jnp.float32) / 255.0
    pixel_class = quantize.grid_cell(ab_true)
    keys = sample_keys(seed, batch_index * size + jnp.arange(size), samples)
    sums, columns = {}, [metrics_lib.gray_panel(lab)]
    for name, predict_ab in predictors.items():
      ab_small = jax.vmap(lambda k: predict_ab(variables[name], lightness, k))(keys)
      rgb = color.colorized_uint8(jnp.broadcast_to(lightness, (samples, *lightness.shape)),
                                  ab_small).astype(jnp.float32) / 255.0
      ab = color.rgb_to_lab(rgb)[..., 1:]
      sums[name] = metrics_lib.image_sums(ab[0], ab_true, rgb[0], rgb_true, batch['mask'],
                                          pixel_class, quantize.NUM_GRID_CELLS)
      if samples > 1:
        sums[name]['diversity'] = batch['mask'] * metrics_lib.diversity(ab)
      columns += list(rgb)
    return sums, jnp.stack([*columns, rgb_true], axis=1)

  return xla_cpu.jit(score_batch)


def paired_differences(per_image: dict, pairs) -> dict:
  """{(A, B): stats.paired_difference of colorizations A and B, scored on the same images},
  for (A, B) in `pairs` (names of `per_image`, as Evaluation holds it)."""
  return {(a, b): stats.paired_difference(per_image[a], per_image[b], metrics_lib.summarize)
          for a, b in pairs}
