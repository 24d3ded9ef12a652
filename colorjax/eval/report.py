"""What a run writes for people: report.md, its tables and figures, metrics_eval.json. Uses
matplotlib's Figure directly: no pyplot global state, no display needed."""

import json
import pathlib

import numpy as np
from matplotlib.figure import Figure

from colorjax.data import sources
from colorjax.eval import stats


def describe_images(count: int, data_config) -> str:
  """'N <which images>' of a data block's eval split, for the sentence of a report that says
  what was scored: held out, or (the bundled photos) the training images themselves."""
  spec, val_percent = data_config.source, data_config.get('val_percent', 10)
  kind, _, path = spec.partition(':')
  if spec == 'samples':
    which = ('the bundled photos, which are also the training photos (no held-out split: a '
             'smoke test, not a score)')
  elif kind == 'folder':
    which = (f'held-out photos of `{sources.local_path(kind, path)}` ({val_percent}% of the '
             'files, chosen by file name, never trained on)')
  elif kind == 'npz':
    which = (f'held-out photos of `{sources.local_path(kind, path)}` (its test_images, never '
             'trained on)')
  else:
    held_out = sources.TFDS_SPLITS.get(spec.split('/')[0], ('train', 'test'))[1]
    which = f"held-out photos of tfds `{spec}` (its '{held_out}' split, never trained on)"
  return f'{count} {which}'


def markdown_table(header, rows) -> str:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return '\n'.join(lines)


# The colorization metrics of metrics.summarize as table columns: (header, cell format).
METRIC_COLUMNS = (
    ('PSNR (dB)', lambda m: f"{m['psnr']:.2f}"),
    ('AuC', lambda m: f"{m['auc']:.4f}"),
    ('AuC rebalanced', lambda m: f"{m['auc_rebalanced']:.4f}"),
    ('colorfulness pred / true',
     lambda m: f"{m['colorfulness_pred']:.1f} / {m['colorfulness_true']:.1f}"),
    ('ab std pred / true', lambda m: f"{m['ab_std_pred']:.2f} / {m['ab_std_true']:.2f}"),
    ('ab-std ratio', lambda m: f"{m['ab_std_ratio']:.3f}"),
    ('per-image ab variance pred / true',
     lambda m: f"{m['image_ab_var_pred']:.1f} / {m['image_ab_var_true']:.1f}"),
)
METRICS_NOTE = (
    'Scored on the images exactly as `run.py colorize` writes them (the network\'s ab joined '
    'with the true L, fitted to the sRGB gamut, 8-bit). AuC: area under the fraction of pixels '
    'with ab error <= t, t in 0..150, normalized to 1; rebalanced: the mean of the AuC of each '
    'step-10 ab cell of the true colours, every colour class counting equally (finite; one '
    'rare pixel weighs at most 1 / classes). ab-std ratio: std of predicted ab / std of true '
    'ab; below 1 means desaturated. Per-image ab variance near 0: one colour per image.')


def metrics_table(metrics: dict, label=('network',)) -> str:
  """One row per entry of {row label: metrics.summarize metrics}; a tuple label fills several
  label columns. A 'diversity' column follows when the metrics have one."""
  columns = list(METRIC_COLUMNS)
  if any('diversity' in m for m in metrics.values()):
    columns.append(('diversity', lambda m: f"{m['diversity']:.2f}"))
  rows = [[*(key if isinstance(key, tuple) else (key,)), *(cell(m) for _, cell in columns)]
          for key, m in metrics.items()]
  return markdown_table([*label, *(header for header, _ in columns)], rows)


METRICS_FILE = 'metrics_eval.json'
PER_IMAGE_FILE = 'per_image_eval.npz'


def save_metrics(workdir, metrics: dict, per_image: dict | None = None) -> pathlib.Path:
  """metrics_eval.json: what other experiments (zhang_compare) and tools read; with
  `per_image` ({name: {key: (images, ...)}}), per_image_eval.npz beside it, for paired
  comparisons across runs (stats.paired_difference)."""
  workdir = pathlib.Path(workdir)
  path = workdir / METRICS_FILE
  path.write_text(json.dumps(metrics, indent=2) + '\n')
  if per_image:
    np.savez_compressed(workdir / PER_IMAGE_FILE, **{
        f'{name}/{key}': np.asarray(value) for name, sums in per_image.items()
        for key, value in sums.items()})
  return path


def _current_names(sums: dict) -> dict:
  """Metric names as today's colorjax spells them (runs evaluated before the rename wrote
  'colourfulness_pred', ...)."""
  return {k.replace('colourfulness', 'colorfulness'): v for k, v in sums.items()}


def load_metrics(workdir) -> dict:
  """What save_metrics wrote as metrics: {name: {metric: value}}."""
  saved = json.loads((pathlib.Path(workdir) / METRICS_FILE).read_text())
  return {name: _current_names(m) if isinstance(m, dict) else m for name, m in saved.items()}


def load_per_image(workdir) -> dict:
  """What save_metrics wrote as per_image: {name: {key: array}}."""
  per_image = {}
  with np.load(pathlib.Path(workdir) / PER_IMAGE_FILE) as saved:
    for entry in saved.files:
      name, key = entry.rsplit('/', 1)
      per_image.setdefault(name, {})[key] = saved[entry]
  return {name: _current_names(sums) for name, sums in per_image.items()}


# The metrics a comparison reports, as (header, key, cell format of a difference).
COMPARED_METRICS = (('PSNR (dB)', 'psnr', '{:+.2f}'), ('AuC', 'auc', '{:+.4f}'),
                    ('AuC rebalanced', 'auc_rebalanced', '{:+.4f}'),
                    ('ab-std ratio', 'ab_std_ratio', '{:+.3f}'))


def interval_text(bounds: dict, fmt: str) -> str:
  """A stats.bootstrap interval as '0.12 [0.05, 0.30]'; '0.12 (no interval)' over one item."""
  if np.isnan(bounds['low']) and not np.isnan(bounds['value']):
    return f"{fmt.format(bounds['value'])} (no interval)"
  return (f"{fmt.format(bounds['value'])} [{fmt.format(bounds['low'])}, "
          f"{fmt.format(bounds['high'])}]")


def interval_cell(difference: dict, fmt: str) -> str:
  """A difference's interval, '+0.12 [-0.05, +0.30]', with 'n.d.' when it includes 0."""
  cell = interval_text(difference, fmt)
  return cell if stats.distinguishable(difference) or np.isnan(difference['low']) \
      else f'{cell} n.d.'


def comparison(differences: dict, items: str, columns=COMPARED_METRICS,
               resamples: int = stats.RESAMPLES) -> list[str]:
  """Report sections for {(A, B): stats.paired_difference of A - B}: a table of the
  differences with their intervals, how they were computed, and one verdict per pair."""
  rows = [[f'{a} − {b}', *(interval_cell(d[key], fmt) for _, key, fmt in columns)]
          for (a, b), d in differences.items()]
  verdicts = [f'**{a} against {b}**: ' + '; '.join(
      f"{header} {stats.verdict(d[key], f'higher for {a}', f'higher for {b}')}"
      for header, key, _ in columns) + '.' for (a, b), d in differences.items()]
  resampled = not all(np.isnan(d[key]['low']) for d in differences.values()
                      for _, key, _ in columns)
  how = (f'with its 95% paired bootstrap interval ({resamples} resamplings of {items}, the '
         'same draw for both sides); n.d.: not distinguishable, the interval includes 0'
         if resampled else f'over {items}, without an interval: one item cannot be resampled')
  return [markdown_table(['difference', *(header for header, _, _ in columns)], rows),
          f'Each difference A − B {how}.', *verdicts]


def interval_table(results) -> str:
  """One row per colorization of {name: {metric: stats.bootstrap interval}}, with the
  photo evaluation's columns."""
  columns = [('PSNR (dB)', 'psnr', '{:.2f}'), ('SSIM', 'ssim', '{:.4f}'),
             ('AuC', 'auc', '{:.4f}'),
             ('AuC rebalanced', 'auc_rebalanced', '{:.4f}'),
             ('colorfulness', 'colorfulness_pred', '{:.1f}'),
             ('ab-std ratio', 'ab_std_ratio', '{:.3f}'),
             ('per-image ab variance', 'image_ab_var_pred', '{:.1f}')]
  rows = [[name, *(interval_text(m[key], fmt) for _, key, fmt in columns)]
          for name, m in results.items()]
  return markdown_table(['colorization', *(header for header, _, _ in columns)], rows)


def mean_std(values, fmt='{:.4g}') -> str:
  """'mean ± std'; one value alone (a std over one seed says nothing)."""
  values = np.asarray(values, np.float64)
  if values.size < 2:
    return fmt.format(values.mean())
  return f'{fmt.format(values.mean())} ± {fmt.format(values.std())}'


def _displayable(image):
  """uint8 as is; floats clipped to [0, 1], where colour conversions can overshoot by a
  rounding error (matplotlib would warn and clip anyway)."""
  image = np.asarray(image)
  return image if image.dtype == np.uint8 else np.clip(image, 0.0, 1.0)


def save_image_row(path, images, titles, panel_inches=3.0):
  """Images (HxWx3, float in [0, 1] or uint8) side by side with a title each."""
  h, w = images[0].shape[:2]
  fig = Figure(figsize=(panel_inches * len(images), panel_inches * h / w + 0.5))
  for ax, image, title in zip(fig.subplots(1, len(images), squeeze=False)[0], images, titles):
    ax.imshow(_displayable(image))
    ax.set_title(title, fontsize=10)
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def save_image_grid(path, rows, column_titles, panel_inches=2.0):
  """A grid of images (HxWx3, float in [0, 1] or uint8): one list of images per row."""
  fig = Figure(figsize=(panel_inches * len(column_titles), panel_inches * len(rows)))
  axes = fig.subplots(len(rows), len(column_titles), squeeze=False)
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      axes[r, c].imshow(_displayable(image))
      axes[r, c].axis('off')
      if r == 0:
        axes[r, c].set_title(column_titles[c], fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def save_curves(path, panels, ylabel, log_y=True, panel_inches=3.2):
  """One subplot per panel title; each panel is a list of (steps, values, label) curves."""
  fig = Figure(figsize=(panel_inches * len(panels), panel_inches))
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (title, curves) in zip(axes, panels.items()):
    for steps, values, label in curves:
      ax.plot(steps, values, label=label, linewidth=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('step')
    if log_y:
      ax.set_yscale('log')
    ax.grid(alpha=0.3)
  axes[0].set_ylabel(ylabel)
  axes[-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


# The held-out metrics an eval curve plots: (panel title, key of metrics.summarize).
EVAL_CURVES = (('PSNR (dB)', 'psnr'), ('AuC rebalanced', 'auc_rebalanced'),
               ('ab-std ratio', 'ab_std_ratio'))


def eval_curve_sections(workdir, histories: dict, name='eval_curves.png') -> list[str]:
  """Report sections with the held-out metrics evaluated while training ({label: the rows of
  a run's eval_metrics.jsonl}), one panel per metric of EVAL_CURVES; none when no run
  evaluated while training."""
  histories = {label: rows for label, rows in histories.items() if rows}
  if not histories:
    return []
  save_curves(pathlib.Path(workdir) / name, {
      title: [([r['step'] for r in rows], [r[key] for r in rows], label)
              for label, rows in histories.items()] for title, key in EVAL_CURVES},
      ylabel='held-out metric', log_y=False)
  return ['## Held-out metrics during training',
          'The state after every `eval_every` steps, scored on the first '
          '`eval_every_batches` batches of the eval split (eval_metrics.jsonl); the tables '
          'above score the final state on `eval_batches` batches.', f'![eval curves]({name})']


def write_report(workdir, title, sections, name='report.md') -> pathlib.Path:
  path = pathlib.Path(workdir) / name
  path.write_text(f'# {title}\n\n' + '\n\n'.join(sections) + '\n')
  return path
