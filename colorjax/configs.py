"""Experiment discovery and `--config.key=value` overrides, with one-line errors."""

import ast
import importlib
import pathlib

import ml_collections

from colorjax.errors import UsageError

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / 'experiments'


def list_experiments() -> dict[str, str]:
  """name -> first line of the module docstring, read without importing the module."""
  experiments = {}
  for path in sorted(EXPERIMENTS_DIR.glob('*.py')):
    if path.name.startswith('_'):
      continue
    doc = ast.get_docstring(ast.parse(path.read_text())) or ''
    experiments[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ''
  return experiments


def load_config(name: str) -> ml_collections.ConfigDict:
  known = list_experiments()
  if name not in known:
    raise UsageError(f"unknown experiment '{name}'; choose one of: {', '.join(known)} "
                     '(python run.py --list describes them)')
  return importlib.import_module(f'experiments.{name}').get_config()


def _flat_keys(config, prefix=''):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _flat_keys(value, f'{prefix}{key}.')
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
  """Parse `raw` as the type of the field's current value. A tuple takes 'a,b' or '(a, b)'."""
  try:
    if not isinstance(current, (tuple, list)):
      return _parse_scalar(raw, current)
    if raw.strip().startswith(('(', '[')):
      items = [str(x) for x in ast.literal_eval(raw)]
    else:
      items = [x.strip() for x in raw.split(',') if x.strip()]
    return tuple(_parse_scalar(x, current[0] if current else None) for x in items)
  except (ValueError, SyntaxError, TypeError):
    expected = type(current).__name__
    raise UsageError(f"--config.{key}={raw!r} is not a valid {expected} "
                     f'(current value {current!r}); give a value of that type') from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str], name: str):
  """Apply {'a.b': 'raw value'} in place; unknown keys and badly typed values are errors."""
  keys = set(_flat_keys(config))
  for key, raw in overrides.items():
    if key not in keys:
      raise UsageError(f"unknown config key '{key}' for experiment '{name}'; "
                       f"known keys: {', '.join(sorted(keys))}")
    *parents, leaf = key.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = _parse(raw, node[leaf], key)
  return config
