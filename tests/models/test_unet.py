"""The U-Net: any input size, its architecture's parameter count, dropout and BatchNorm."""


import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax.models import layers
from colorjax.models.unet import UNet
from tests import numpy_init


@pytest.mark.parametrize('out_channels', [3, 2])
def test_unet_output_matches_any_input_size_and_lies_in_zero_one(out_channels):
  model = UNet(out_channels)
  variables = numpy_init.variables(model, (1, 64, 64, 1))
  apply = numpy_init.jit_unoptimized(model.apply)
  for height, width in [(100, 75), (64, 64), (128, 96)]:
    gray = numpy_init.uniform((2, height, width, 1), height)
    output = apply(variables, gray)
    assert output.shape == (2, height, width, out_channels)
    assert jnp.all((output > 0) & (output < 1))


def test_unet_crop_is_aligned_with_the_reflect_padding():
  """A 100x75 input gives the model's output on the image padded by hand to 112x80, cropped:
  the padding goes at the bottom and right, by reflection, and the crop takes it off again.
  Edge padding gives other values near the border, so the comparison can tell them apart."""
  model = UNet(2)
  variables = numpy_init.variables(model, (1, 64, 64, 1))
  apply = numpy_init.jit_unoptimized(model.apply)
  gray = numpy_init.uniform((1, 100, 75, 1), 1)
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
  variables = numpy_init.abstract(UNet(2), (1, 64, 64, 1))
  assert numpy_init.count(variables['params']) == encoder + decoder + conv(1, 16, 2, True)


def test_unet_training_mode_updates_batch_stats_and_gives_finite_gradients():
  model = UNet(2)
  variables = numpy_init.variables(model, (2, 64, 64, 1))
  gray = numpy_init.uniform((2, 64, 64, 1), 2)

  def loss(params, key):
    output, updates = model.apply({**variables, 'params': params}, gray, train=True,
                                  mutable=['batch_stats'], rngs={'dropout': key})
    return jnp.mean(output), (output, updates['batch_stats'])

  grad = numpy_init.jit_unoptimized(jax.grad(loss, has_aux=True))
  grads, (output, batch_stats) = grad(variables['params'], jax.random.PRNGKey(3))
  assert all(jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads))
  assert any(jnp.any(g != 0) for g in jax.tree.leaves(grads))
  first_bn = batch_stats['DoubleConv_0']['BatchNorm_0']['mean']
  assert not np.allclose(first_bn, variables['batch_stats']['DoubleConv_0']['BatchNorm_0']['mean'])
  _, (other_dropout, _) = grad(variables['params'], jax.random.PRNGKey(4))
  assert not np.allclose(output, other_dropout)  # dropout is live in training


@pytest.mark.slow
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
