"""The U-Net (any input size) and the ResNet-18 classifier/colorizer with encoder transfer."""

import functools

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax.models import layers
from colorjax.models.resnet import ResNetClassifier, ResNetColorizer, load_encoder
from colorjax.models.unet import UNet


# Compiling dominates these tests, which run each program once or twice: without LLVM
# optimization XLA's CPU backend compiles these models 2-3x faster. Random numbers come from
# NumPy for the same reason: JAX's generator compiles anew for each shape (~1 s on 2 cores).
_jit = functools.partial(jax.jit, compiler_options={'xla_backend_optimization_level': 0})


def _count(tree):
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


def _abstract(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def _uniform(shape, seed):
  return np.random.default_rng(seed).random(shape, np.float32)


def _init(model, shape, seed=0):
  """Variables of the model's structure: LeCun-normal kernels (Flax's default), BatchNorm and
  biases at Flax's initial values. Filled with NumPy: `model.init` compiles a generator per
  kernel shape, ~20 s per model."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      fan_in = np.prod(leaf.shape[:-1])
      return rng.normal(0.0, np.sqrt(1.0 / fan_in), leaf.shape).astype(np.float32)
    return np.full(leaf.shape, 1.0 if name in ('scale', 'var') else 0.0, np.float32)

  return jax.tree_util.tree_map_with_path(fill, _abstract(model, shape))


@pytest.mark.parametrize('out_channels', [3, 2])
def test_unet_output_matches_any_input_size_and_lies_in_zero_one(out_channels):
  model = UNet(out_channels)
  variables = _init(model, (1, 64, 64, 1))
  apply = _jit(model.apply)
  for height, width in [(100, 75), (64, 64), (128, 96)]:
    gray = _uniform((2, height, width, 1), height)
    output = apply(variables, gray)
    assert output.shape == (2, height, width, out_channels)
    assert jnp.all((output > 0) & (output < 1))


def test_unet_crop_is_aligned_with_the_reflect_padding():
  """A 100x75 input gives the model's output on the image padded by hand to 112x80, cropped:
  the padding goes at the bottom and right, by reflection, and the crop takes it off again.
  Edge padding gives other values near the border, so the comparison can tell them apart."""
  model = UNet(2)
  variables = _init(model, (1, 64, 64, 1))
  apply = _jit(model.apply)
  gray = _uniform((1, 100, 75, 1), 1)
  pad = ((0, 0), (0, 12), (0, 5), (0, 0))
  output = apply(variables, gray)
  np.testing.assert_allclose(output, apply(variables, np.pad(gray, pad, 'reflect'))[:, :100, :75],
                             atol=1e-6)
  assert not np.allclose(output, apply(variables, np.pad(gray, pad, 'edge'))[:, :100, :75],
                         atol=1e-6)


def test_unet_parameter_count_follows_the_architecture():
  """Per level two 3x3 convs without bias, each with BatchNorm scale and bias; 2x2 transposed
  convs with bias; a 1x1 head with bias."""
  def conv(size, cin, cout, bias):
    return size * size * cin * cout + (cout if bias else 0)

  def level(cin, cout):
    return conv(3, cin, cout, False) + 2 * cout + conv(3, cout, cout, False) + 2 * cout

  encoder = level(1, 16) + level(16, 32) + level(32, 64) + level(64, 128) + level(128, 256)
  decoder = sum(conv(2, 2 * c, c, True) + level(2 * c, c) for c in (128, 64, 32, 16))
  variables = _abstract(UNet(2), (1, 64, 64, 1))
  assert _count(variables['params']) == encoder + decoder + conv(1, 16, 2, True)


def test_unet_training_mode_updates_batch_stats_and_gives_finite_gradients():
  model = UNet(2)
  variables = _init(model, (2, 64, 64, 1))
  gray = _uniform((2, 64, 64, 1), 2)

  def loss(params, key):
    output, updates = model.apply({**variables, 'params': params}, gray, train=True,
                                  mutable=['batch_stats'], rngs={'dropout': key})
    return jnp.mean(output), (output, updates['batch_stats'])

  grad = _jit(jax.grad(loss, has_aux=True))
  grads, (output, batch_stats) = grad(variables['params'], jax.random.PRNGKey(3))
  assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads))
  assert any(jnp.any(g != 0) for g in jax.tree.leaves(grads))
  first_bn = batch_stats['DoubleConv_0']['BatchNorm_0']['mean']
  assert not np.allclose(first_bn, variables['batch_stats']['DoubleConv_0']['BatchNorm_0']['mean'])
  _, (other_dropout, _) = grad(variables['params'], jax.random.PRNGKey(4))
  assert not np.allclose(output, other_dropout)  # dropout is live in training


def test_resnet18_classifier_has_torchvisions_parameter_count():
  variables = _abstract(ResNetClassifier(1000), (1, 224, 224, 3))
  assert _count(variables['params']) == 11_689_512


def test_colorizer_rejects_sides_not_divisible_by_32():
  with pytest.raises(ValueError, match='divisible by 32'):
    _abstract(ResNetColorizer(), (1, 64, 48, 1))


def test_load_encoder_copies_the_classifiers_encoder_and_keeps_the_decoder():
  classifier = ResNetClassifier(102)
  l_in = _uniform((2, 64, 64, 1), 5)
  trained = _init(classifier, (1, 64, 64, 1), seed=1)
  train_apply = _jit(lambda v: classifier.apply(v, l_in, train=True, mutable=['batch_stats']))
  _, updates = train_apply(trained)
  trained = {**trained, **updates}  # running statistics away from their initial values
  colorizer = ResNetColorizer()
  fresh = _init(colorizer, (1, 64, 64, 1), seed=2)

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

  output = _jit(colorizer.apply)(loaded, l_in)
  assert output.shape == (2, 64, 64, 2)
  assert jnp.all((output > 0) & (output < 1))


def test_load_encoder_rejects_a_classifier_of_other_input_channels():
  rgb = _abstract(ResNetClassifier(102), (1, 64, 64, 3))
  gray = _abstract(ResNetColorizer(), (1, 64, 64, 1))
  with pytest.raises(ValueError, match='stem_conv'):
    load_encoder(gray['params'], rgb['params'])


def test_unet_drops_out_after_every_pool_and_every_decoder_concatenation():
  """The portrait write-up's 8 Dropout(0.1) layers: 4 after the encoder's max-pools, 4 after
  the decoder's skip concatenations (counted as the network runs)."""
  model = UNet(2)
  x = jnp.zeros((1, 32, 32, 1))
  variables = model.init(jax.random.PRNGKey(0), x)
  rates = []

  def count(next_fun, args, kwargs, context):
    if isinstance(context.module, layers.Dropout) and context.method_name == '__call__':
      rates.append(context.module.rate)
    return next_fun(*args, **kwargs)

  with flax.linen.intercept_methods(count):
    model.apply(variables, x, train=True, mutable=['batch_stats'],
                rngs={'dropout': jax.random.PRNGKey(1)})
  assert rates == [0.1] * 8
