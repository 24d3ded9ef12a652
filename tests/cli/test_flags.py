"""--config.KEY=VALUE overrides: typed parsing and one-line errors."""

import ml_collections
import pytest

from colorjax.cli import flags
from colorjax.errors import UsageError


def _config():
  return ml_collections.ConfigDict({
      'steps': 10, 'rate': 0.5, 'name': 'a', 'flag': False, 'seeds': (0, 1),
      'schemes': ('none', 'unit'), 'optimizer': {'name': 'adam', 'learning_rate': 1e-3}})


@pytest.mark.parametrize('key,raw,expected', [
    ('steps', '25', 25), ('rate', '2', 2.0), ('rate', '3e-4', 3e-4), ('name', 'b c', 'b c'),
    ('flag', 'true', True), ('flag', '0', False), ('seeds', '3,4,5', (3, 4, 5)),
    ('seeds', '(7,)', (7,)), ('schemes', 'unit', ('unit',)),
    ('schemes', "['centered', 'shifted']", ('centered', 'shifted')),
    ('optimizer.learning_rate', '0.01', 0.01), ('optimizer.name', 'sgd', 'sgd'),
    ('optimizer', "{'name': 'sgd', 'learning_rate': 0.1}",
     ml_collections.ConfigDict({'name': 'sgd', 'learning_rate': 0.1})),
])
def test_overrides_are_parsed_as_the_fields_type(key, raw, expected):
  config = flags.apply_overrides(_config(), {key: raw}, 'x')
  value = config
  for part in key.split('.'):
    value = value[part]
  assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize('key,raw,message', [
    ('step', '1', "unknown config key 'step'"),
    ('optimizer.lr', '1', "unknown config key 'optimizer.lr'"),
    ('steps', '2.5', "'2.5' is not a valid int"),
    ('flag', 'maybe', "'maybe' is not a valid bool"),
    ('seeds', 'a,b', "'a,b' is not a valid tuple"),
    ('optimizer', 'sgd', "'sgd' is not a valid dict"),
])
def test_bad_overrides_are_usage_errors(key, raw, message):
  with pytest.raises(UsageError, match=message):
    flags.apply_overrides(_config(), {key: raw}, 'x')
