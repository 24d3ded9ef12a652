"""Configs: finding experiments (by name or file), `--config.key=value` overrides with
one-line errors, the blocks experiments share, and binding a workdir to the config it ran."""

import ast
import importlib
import importlib.util
import json
import pathlib
import sys

import ml_collections

from colorjax.errors import UsageError

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / 'experiments'


def data_config(**overrides) -> ml_collections.ConfigDict:
  """The input fields every experiment that trains on a dataset holds under `config.data`
  (colorjax/data.py reads them)."""
  config = ml_collections.ConfigDict(dict(
      source='samples',    # samples | NAME (tfds) | folder:PATH | npz:PATH (colorjax/data.py)
      crop=64,             # square crops, train (random) and eval (centre)
      train_short_side=0,  # >0: training images resized to this short side before the crop
                           # (eval always resizes the short side to the crop); 0: as stored
      batch_size=16,       # global; each process reads batch_size / process_count
      eval_batch_size=16,
      seed=0,
      gray='weight',       # nearly gray images: 'weight' (the loss gives them 0) or 'drop'
      gray_threshold=5.0,  # nearly gray: every |a|, |b| within this
      val_percent=10,      # folder: share of files held out for evaluation
      tfds_data_dir='',    # '' = tfds default (TFDS_DATA_DIR or ~/tensorflow_datasets)
      download=True,       # let tfds download datasets that allow it
  ))
  config.update(overrides)
  return config


def optimizer(name, learning_rate, *, schedule='constant', drops=(), warmup_steps=0,
              decay_steps=0, end_factor=0.0, accumulate_steps=1, **settings):
  """An optimizer block (train.make_optimizer): optax's `name` with `learning_rate` and any
  other `settings` of it; the rate's schedule, counted in optimizer updates: 'constant',
  'steps' (x factor from each (update, factor) of `drops` on) or 'warmup_cosine' (linear
  from 0 over warmup_steps, cosine down to end_factor x the rate at decay_steps); and
  `accumulate_steps` micro-batches averaged into each update (optax.MultiSteps)."""
  return ml_collections.ConfigDict(dict(
      name=name, learning_rate=learning_rate, schedule=schedule, drops=tuple(drops),
      warmup_steps=warmup_steps, decay_steps=decay_steps, end_factor=end_factor,
      accumulate_steps=accumulate_steps, **settings))


def schedule(config, *, num_steps=0, epochs=None, log_every=100, checkpoint_every=1000,
             max_to_keep=2, eval_batches=100, report_images=6, eval_every=0,
             eval_every_batches=4, best_metric='', best_mode='max', keep_period=0):
  """The length, logging, checkpoint and evaluation fields of a training stage (what
  supervised.fit_network and train.fit read); `epochs` (> 0), for programs that count in
  epochs, overrides `num_steps`. Steps count batches (micro-batches when the optimizer
  accumulates). eval_every > 0 evaluates the state on `eval_every_batches` eval batches
  every that many steps (metrics in eval_metrics.jsonl and TensorBoard); best_metric (e.g.
  'psnr', best_mode 'max') keeps the best state in checkpoints_best/; keep_period keeps
  every checkpoint at its multiples; profile_steps 'FIRST,LAST' traces those steps."""
  config.update(dict(num_steps=num_steps, log_every=log_every,
                     checkpoint_every=checkpoint_every, max_to_keep=max_to_keep,
                     eval_batches=eval_batches, report_images=report_images,
                     eval_every=eval_every, eval_every_batches=eval_every_batches,
                     best_metric=best_metric, best_mode=best_mode, keep_period=keep_period,
                     profile_steps=()))
  if epochs is not None:
    config.epochs = epochs
  return config


def smoke(config, *, crop, num_steps, **changes):
  """Shrink a stage to a smoke run: the bundled photos, batches of 8, `num_steps` steps with
  one checkpoint at the end, one eval batch; `changes` set any other field."""
  config.data.update(source='samples', crop=crop, batch_size=8, eval_batch_size=8)
  if 'epochs' in config:
    config.epochs = 0
  config.update(dict(num_steps=num_steps, checkpoint_every=num_steps, eval_batches=1,
                     report_images=4) | changes)
  return config


BSDS300 = 'folder:../shared/data/bsds300'  # the real photos beside the checkout


def photos(config, *, crop, num_steps, batch_size=16, **changes):
  """Shrink a stage to a CPU-sized run on real photos: the 300 BSDS500 photos beside the
  checkout (another folder: --config.data.source=folder:PATH), 10% held out by file name
  (37 of the 300).
  Training images are resized to the crop's short side first, so the random crops show the
  scene at the scale the held-out centre crops do; every held-out photo is evaluated."""
  config.data.update(source=BSDS300, crop=crop, train_short_side=crop, batch_size=batch_size,
                     eval_batch_size=batch_size)
  if 'epochs' in config:
    config.epochs = 0
  config.update(dict(num_steps=num_steps, checkpoint_every=max(num_steps // 4, 1),
                     eval_batches=1000, report_images=6) | changes)
  return config


def list_experiments() -> dict[str, str]:
  """name -> first line of the module docstring, read without importing the module."""
  experiments = {}
  for path in sorted(EXPERIMENTS_DIR.glob('*.py')):
    if path.name.startswith('_'):
      continue
    doc = ast.get_docstring(ast.parse(path.read_text())) or ''
    experiments[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ''
  return experiments


def _make_experiments_importable():
  """The package `experiments` lives beside colorjax/ in the checkout, which is not on
  sys.path when the `colorjax` command runs."""
  root = str(EXPERIMENTS_DIR.parent)
  if root not in sys.path:
    sys.path.append(root)


def _experiment_module(name: str):
  _make_experiments_importable()
  return importlib.import_module(f'experiments.{name}')


def variants(name: str) -> tuple[str, ...]:
  """The variants an experiment module names in VARIANTS (e.g. zhang_softmax: smoke)."""
  return tuple(getattr(_experiment_module(name), 'VARIANTS', ()))


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'NAME' or 'NAME:VARIANT' (e.g. zhang_softmax:smoke): get_config() or get_config(VARIANT)."""
  name, _, variant = spec.partition(':')
  known = list_experiments()
  if name not in known:
    raise UsageError(f"unknown experiment '{name}'; choose one of: {', '.join(known)} "
                     '(python run.py --list describes them)')
  return _get_config(_experiment_module(name), f"experiment '{name}'", variant)


def split_config_file(spec: str) -> tuple[pathlib.Path, str]:
  """'PATH.py[:VARIANT]' -> (path, variant or '')."""
  path, variant = spec, ''
  if ':' in pathlib.Path(spec).name:
    path, _, variant = spec.rpartition(':')
  return pathlib.Path(path).expanduser(), variant


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """'PATH.py' or 'PATH.py:VARIANT': a config module outside experiments/, with get_config()
  as an experiment module has."""
  path, variant = split_config_file(spec)
  if path.suffix != '.py' or not path.is_file():
    raise UsageError(f"--config={spec}: no config module '{path}'; pass PATH.py[:VARIANT] of a "
                     'Python file with get_config()')
  _make_experiments_importable()  # a config module may build on an experiment's
  module_spec = importlib.util.spec_from_file_location(f'_colorjax_config_{path.stem}', path)
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[module_spec.name] = module  # dataclasses and pickling look modules up here
  module_spec.loader.exec_module(module)
  if not callable(getattr(module, 'get_config', None)):
    raise UsageError(f'--config={spec}: {path} defines no get_config(); give it one that '
                     'returns an ml_collections.ConfigDict')
  return _get_config(module, str(path), variant)


def _get_config(module, what: str, variant: str) -> ml_collections.ConfigDict:
  if not variant:
    return module.get_config()
  known = getattr(module, 'VARIANTS', ())
  if variant not in known:
    raise UsageError(f"{what} has no variant '{variant}'"
                     + (f"; variants: {', '.join(known)}" if known else ''))
  return module.get_config(variant)


def _flat_keys(config, prefix='', blocks=False):
  """The dotted keys of the leaves (and, with `blocks`, of the nested blocks too)."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      if blocks:
        yield f'{prefix}{key}'
      yield from _flat_keys(value, f'{prefix}{key}.', blocks)
    else:
      yield f'{prefix}{key}'


def _parse_scalar(raw: str, like):
  if isinstance(like, bool):
    if raw.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(raw)
    return raw.lower() in ('true', '1')
  if isinstance(like, (int, float, str)):
    return type(like)(raw)
  return ast.literal_eval(raw)


def _parse(raw: str, current, key: str):
  """Parse `raw` as the type of the field's current value. A tuple takes 'a,b' or '(a, b)';
  a block (e.g. optimizer) a whole dict, "{'name': 'sgd', 'learning_rate': 0.1}"."""
  try:
    if isinstance(current, ml_collections.ConfigDict):
      value = ast.literal_eval(raw)
      if not isinstance(value, dict):
        raise ValueError(raw)
      return ml_collections.ConfigDict(value)
    if not isinstance(current, (tuple, list)):
      return _parse_scalar(raw, current)
    if raw.strip().startswith(('(', '[')):
      items = [str(x) for x in ast.literal_eval(raw)]
    else:
      items = [x.strip() for x in raw.split(',') if x.strip()]
    return tuple(_parse_scalar(x, current[0] if current else None) for x in items)
  except (ValueError, SyntaxError, TypeError):
    expected = 'dict' if isinstance(current, ml_collections.ConfigDict) else type(current).__name__
    raise UsageError(f"--config.{key}={raw!r} is not a valid {expected} "
                     f'(current value {current!r}); give a value of that type') from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str], name: str):
  """Apply {'a.b': 'raw value'} in place; unknown keys and badly typed values are errors."""
  keys = set(_flat_keys(config, blocks=True))
  for key, raw in overrides.items():
    if key not in keys:
      raise UsageError(f"unknown config key '{key}' for experiment '{name}'; "
                       f"known keys: {', '.join(sorted(_flat_keys(config)))}")
    *parents, leaf = key.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = _parse(raw, node[leaf], key)
  return config


# Fields that only change what a finished run evaluates, how long it trains or which steps it
# traces: a run may be resumed or re-evaluated with new values (any block's field of that name).
MAY_CHANGE = ('num_steps', 'epochs', 'eval_batches', 'eval_batch_size', 'report_images',
              'temperatures', 'temperature', 'profile_steps')


def _leaves(tree: dict, prefix=''):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}', value


def check_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict):
  """Refuse, reading only, a workdir that is a file or holds a run made with another config.

  Only a run that saved a checkpoint (in any of its networks' folders) binds the workdir: a
  command that failed before training (a typo in a value, say) leaves nothing that a
  corrected command would trip over. Fields in MAY_CHANGE may differ, and so may fields a
  newer colorjax added (absent from the saved config; their defaults keep the behaviour that
  run trained with); a field it dropped stops the resume with one line.
  """
  from colorjax import train  # jax: only once a run is about to start
  if workdir.exists() and not workdir.is_dir():
    raise UsageError(f'--workdir={workdir} is a file, not a folder: pass a folder')
  path = workdir / 'config.json'
  trained = any(train.saved_steps(folder.parent) for folder in workdir.rglob('checkpoints'))
  if path.exists() and trained:
    old = dict(_leaves(json.loads(path.read_text())))
    new = dict(_leaves(json.loads(config.to_json_best_effort())))
    differ = sorted(k for k in old  # a field absent from `old` was added since: its default
                    if k.rpartition('.')[2] not in MAY_CHANGE and old[k] != new.get(k))
    gone = [k for k in differ if k not in new]
    if gone:
      raise UsageError(
          f"{workdir} holds a run made by an earlier colorjax, whose {', '.join(gone)} no "
          'longer exist: it cannot be resumed exactly; pass a new --workdir (run.py evaluate '
          'and colorize still read it)')
    if differ:
      raise UsageError(
          f"{workdir} holds a run made with a different config ({', '.join(differ)} differ); "
          'pass a new --workdir, or delete that folder to start over')


def bind_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict):
  """check_workdir, then write config.json (process 0)."""
  from colorjax import distributed
  check_workdir(workdir, config)
  path = workdir / 'config.json'
  new = json.loads(config.to_json_best_effort())
  if distributed.is_main():  # every process checks (and stops with its error); one writes
    workdir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix('.tmp')
    temporary.write_text(json.dumps(new, indent=2, sort_keys=True) + '\n')
    temporary.replace(path)  # atomic: another process never reads half a file
