"""`--config.KEY=VALUE` overrides: each value parsed as the type of the field it replaces,
unknown keys and values of the wrong type refused in one line.

colorjax keeps this small parser rather than ml_collections.config_flags: config_flags
parses through absl.flags, which prints a usage dump on a bad value where colorjax gives one
line and exit status 2, knows no `--experiment=NAME:VARIANT` lookup in experiments/ nor
`--list`, and needs absl's app.run around main. What it would add, locking the config so an
override cannot add a field, configs._get_config does (config.lock()).
"""

import ast

import ml_collections

from colorjax import configs
from colorjax.errors import UsageError


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
  keys = set(configs.field_names(config))
  for key, raw in overrides.items():
    if key not in keys:
      leaves = sorted(configs.field_names(config, blocks=False))
      raise UsageError(f"unknown config key '{key}' for experiment '{name}'; "
                       f"known keys: {', '.join(leaves)}")
    *parents, leaf = key.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = _parse(raw, node[leaf], key)
  return config
