"""Experiment discovery, `--config.key=value` overrides with one-line errors, and the config
blocks experiments share."""

import ast
import importlib
import pathlib

import ml_collections

from colorjax.errors import UsageError

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / 'experiments'


def data_config(**overrides) -> ml_collections.ConfigDict:
  """The input fields every experiment that trains on a dataset holds under `config.data`
  (colorjax/data.py reads them)."""
  config = ml_collections.ConfigDict(dict(
      source='samples',    # samples | NAME (tfds) | folder:PATH | npz:PATH (colorjax/data.py)
      crop=64,             # square crops, train (random) and eval (centre)
      batch_size=16,       # global; each process reads batch_size / process_count
      eval_batch_size=16,
      shuffle_buffer=2048,
      seed=0,
      gray='weight',       # nearly gray images: 'weight' (the loss gives them 0) or 'drop'
      gray_threshold=5.0,  # nearly gray: every |a|, |b| within this
      val_percent=10,      # folder: share of files held out for evaluation
      tfds_data_dir='',    # '' = tfds default (TFDS_DATA_DIR or ~/tensorflow_datasets)
      download=True,       # let tfds download datasets that allow it
  ))
  config.update(overrides)
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


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'NAME' or 'NAME:VARIANT' (e.g. zhang_softmax:smoke): get_config() or get_config(VARIANT)."""
  name, _, variant = spec.partition(':')
  known = list_experiments()
  if name not in known:
    raise UsageError(f"unknown experiment '{name}'; choose one of: {', '.join(known)} "
                     '(python run.py --list describes them)')
  module = importlib.import_module(f'experiments.{name}')
  if not variant:
    return module.get_config()
  variants = getattr(module, 'VARIANTS', ())
  if variant not in variants:
    raise UsageError(f"experiment '{name}' has no variant '{variant}'"
                     + (f"; variants: {', '.join(variants)}" if variants else ''))
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
