"""What a family says of its network: the working size of a photo, and the options it takes."""

import dataclasses

import pytest

from colorjax import configs, families
from colorjax.errors import UsageError
from colorjax.families import spec


def test_working_size_keeps_the_aspect_and_rounds_to_the_stride(zhang_run):
  root, config, _ = zhang_run
  trained = families.network_spec(config, root)  # stride 8, short side 256
  assert trained.working_size(512, 768) == (256, 384)
  assert trained.working_size(333, 517) == (256, 400)  # 397.5 -> the nearest multiple of 8
  assert trained.working_size(333, 517, 128) == (128, 200)
  assert trained.working_size(333, 517, (250, 190)) == (248, 192)
  fixed = dataclasses.replace(trained, fixed_size=True)
  assert fixed.working_size(333, 517, 128) == trained.size


def test_a_run_that_trains_no_colorizer_is_one_line(tmp_path):
  with pytest.raises(UsageError, match='trains no colorizer'):
    families.network_spec(configs.load_config('zhang_compare'), tmp_path)


def test_network_choices_are_checked():
  assert spec.choose(spec.Options(), ['a', 'b'], 'b') == 'b'
  assert spec.choose(spec.Options(network='a'), ['a', 'b'], 'b') == 'a'
  with pytest.raises(UsageError, match='this workdir holds a, b'):
    spec.choose(spec.Options(network='c'), ['a', 'b'], 'b')
  with pytest.raises(UsageError, match='holds one network'):
    spec.single(spec.Options(network='a'))
