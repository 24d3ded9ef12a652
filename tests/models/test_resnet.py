"""The ResNet-18 classifier and colorizer, and moving the encoder from one to the other."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax.models.resnet import ResNetClassifier, ResNetColorizer, load_encoder
from tests import numpy_init


def test_resnet18_classifier_has_torchvisions_parameter_count():
  variables = numpy_init.abstract(ResNetClassifier(1000), (1, 224, 224, 3))
  assert numpy_init.count(variables['params']) == 11_689_512


def test_colorizer_rejects_sides_not_divisible_by_32():
  with pytest.raises(ValueError, match='divisible by 32'):
    numpy_init.abstract(ResNetColorizer(), (1, 64, 48, 1))


def test_load_encoder_copies_the_classifiers_encoder_and_keeps_the_decoder():
  classifier = ResNetClassifier(102)
  l_in = numpy_init.uniform((2, 64, 64, 1), 5)
  trained = numpy_init.variables(classifier, (1, 64, 64, 1), seed=1)
  train_apply = numpy_init.jit_unoptimized(
      lambda v: classifier.apply(v, l_in, train=True, mutable=['batch_stats']))
  _, updates = train_apply(trained)
  trained = {**trained, **updates}  # running statistics away from their initial values
  colorizer = ResNetColorizer()
  fresh = numpy_init.variables(colorizer, (1, 64, 64, 1), seed=2)

  loaded = {name: load_encoder(fresh[name], trained[name]) for name in fresh}
  for name in ('params', 'batch_stats'):
    ours = jax.tree.leaves(loaded[name]['encoder'])
    theirs = jax.tree.leaves(trained[name]['encoder'])
    before = jax.tree.leaves(fresh[name]['encoder'])
    assert len(ours) == len(theirs) == len(before)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))
    assert not all(np.array_equal(a, b) for a, b in zip(before, theirs))
    decoder = {k: v for k, v in loaded[name].items() if k != 'encoder'}
    assert decoder and jax.tree.all(jax.tree.map(
        np.array_equal, decoder, {k: fresh[name][k] for k in decoder}))

  output = numpy_init.jit_unoptimized(colorizer.apply)(loaded, l_in)
  assert output.shape == (2, 64, 64, 2)
  assert jnp.all((output > 0) & (output < 1))


def test_load_encoder_rejects_a_classifier_of_other_input_channels():
  rgb = numpy_init.abstract(ResNetClassifier(102), (1, 64, 64, 3))
  gray = numpy_init.abstract(ResNetColorizer(), (1, 64, 64, 1))
  with pytest.raises(ValueError, match='stem_conv'):
    load_encoder(gray['params'], rgb['params'])
