"""Experiment configs: every experiment found by name, described, and locked once built;
the shared blocks; the loop fields written from the one Loop dataclass."""

import dataclasses

import ml_collections
import pytest

from colorjax import configs
from colorjax.configs import Loop
from colorjax.errors import UsageError


def test_every_experiment_has_a_description_and_a_config():
  experiments = configs.list_experiments()
  assert 'norm_ablation' in experiments
  for name, description in experiments.items():
    assert description, f'{name} needs a one-line docstring'
    assert configs.load_config(name).program


def test_a_loaded_config_is_locked_and_its_blocks_refuse_new_fields():
  config = configs.load_config('zhang_softmax:smoke')
  with pytest.raises(AttributeError):
    config.num_stpes = 10
  with pytest.raises(KeyError, match='crop_size'):
    configs.data_config(crop_size=32)
  config.num_steps = 10  # fields that exist take new values


def test_schedule_writes_the_loop_defaults():
  """configs.schedule's fields are configs.Loop's, with its defaults: one set."""
  config = configs.schedule(ml_collections.ConfigDict(), num_steps=7, log_every=5)
  loop = Loop.from_config(config)
  assert loop == Loop(7, log_every=5)
  assert {f.name for f in dataclasses.fields(Loop)} - set(config) == {'steps_per_call'}


def test_a_variant_may_replace_a_block_but_not_add_to_one():
  base = ml_collections.ConfigDict({'optimizer': configs.optimizer('adam', 1e-3, b1=0.9),
                                    'seed': 0})
  replaced = ml_collections.ConfigDict({'optimizer': configs.optimizer('rmsprop', 1e-4,
                                                                       decay=0.9), 'seed': 1})
  assert configs._added_fields(replaced, base) == []
  added = ml_collections.ConfigDict({'optimizer': base.optimizer, 'seed': 0, 'sead': 1})
  assert configs._added_fields(added, base) == ['sead']


def test_every_experiment_and_variant_holds_sane_values():
  for name in configs.list_experiments():
    for spec in (name, *(f'{name}:{v}' for v in configs.variants(name))):
      configs.check_values(configs.load_config(spec))


@pytest.mark.parametrize('field,value,message', [
    ('width', 4.5, r'--config.block.width=4.5 must be in \[0.03125, 4\]'),
    ('seeds', (3, -1), '--config.block.seeds=3,-1 must each be >= 0'),
    ('anything', float('nan'), '--config.block.anything=nan must be a finite number'),
    ('anything', -float('inf'), 'anything=-inf must be a finite number'),
    ('optimizer', configs.optimizer('sgd', 0.1, momentum=-0.9), 'momentum=-0.9 must be in'),
])
def test_nonsense_numbers_are_refused_in_any_block(field, value, message):
  config = ml_collections.ConfigDict({'block': {field: value, 'count': 2**80, 'flag': True}})
  with pytest.raises(UsageError, match=message):
    configs.check_values(config)


@pytest.mark.parametrize('typo,message', [
    ('config.chekpoint_every = 5', 'field chekpoint_every is one keystroke from checkpoint_every'),
    ('config.widht = 0.5', 'field widht is one keystroke from width'),
    ('config.log_evry = 5', 'field log_evry is one keystroke from log_every'),
])
def test_a_typo_in_a_base_config_is_refused(tmp_path, typo, message):
  """Not only a variant's: a field get_config itself misspells would train with the default."""
  path = tmp_path / 'mine.py'
  drop = '  del config["log_every"]\n' if 'log_evry' in typo else ''
  path.write_text('from experiments import zhang_softmax\n\n\ndef get_config():\n'
                  f'  config = zhang_softmax.get_config("smoke")\n{drop}  {typo}\n'
                  '  return config\n')
  with pytest.raises(UsageError, match=f'{message}: a typo'):
    configs.load_config_file(str(path))


@pytest.mark.parametrize('a,b,near', [
    ('seed', 'sede', True), ('seed', 'sed', True), ('width', 'wodth', True),
    ('temperature', 'temperatures', False), ('b1', 'b2', False), ('crop', 'crops_x', False),
    ('batch_size', 'eval_batch_size', False), ('pipeline_batches', 'pipeline_batch_size', False),
])
def test_one_keystroke_apart(a, b, near):
  assert configs._one_edit_apart(a, b) is near
  assert configs._one_edit_apart(b, a) is near


def test_every_training_stage_holds_every_loop_field():
  """Every loop field the docs name (--config.preempt_grace_s, ...) can be set in every
  experiment that trains, at Loop's default unless the experiment chose another."""
  loop_names = {f.name for f in dataclasses.fields(Loop)}
  evaluation = set(configs._EVALUATION_FIELDS)

  def stages(config):
    if 'num_steps' in config:
      yield config
    for value in config.values():
      if isinstance(value, ml_collections.ConfigDict):
        yield from stages(value)

  for name in set(configs.list_experiments()) - {'benchmark', 'zhang_compare'}:  # train none
    found = list(stages(configs.load_config(name)))
    assert found, name
    for stage in found:
      optional = {'steps_per_call'} | (evaluation if 'eval_batches' not in stage else set())
      assert loop_names - optional - set(stage) == set(), name
