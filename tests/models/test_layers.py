"""Every conv formulation of layers.py against lax.conv_general_dilated (forward and both
gradients), max-pool, dropout."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from colorjax.models import layers


@functools.partial(jax.jit, static_argnums=(0, 1))
def _outputs_and_gradients(ours, theirs, x, kernel, probe):
  """((output, (d/dx, d/dkernel)) of sum(conv(x, kernel) * probe)) for both convolutions, in
  one compiled function (the tests' time is compiling)."""
  def both(conv):
    objective = lambda x, k: jnp.sum(conv(x, k) * probe)
    return conv(x, kernel), jax.grad(objective, (0, 1))(x, kernel)
  return both(ours), both(theirs)


def _reference_conv_nchw(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                      dimension_numbers=('NCHW', 'HWIO', 'NCHW'))


@pytest.mark.parametrize('cin,cout,h,w', [(1, 6, 7, 9), (6, 6, 5, 4), (6, 2, 8, 8)])
def test_taps_conv_matches_lax_conv_forward_and_gradients(cin, cout, h, w):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (2, cin, h, w))
  kernel = jax.random.normal(kk, (3, 3, cin, cout))
  probe = jax.random.normal(kg, (2, cout, h, w))
  ours, ref = _outputs_and_gradients(layers.conv3x3_taps, _reference_conv_nchw, x, kernel,
                                     probe)
  np.testing.assert_allclose(ours[0], ref[0], atol=1e-5)
  for a, b in zip(ours[1], ref[1]):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def _nhwc_conv(x, kernel, strides=(1, 1), padding='SAME', lhs_dilation=None, dilation=None):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation, dilation,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _definition_of_transposed(kernel_size, strides, padding):
  """A transposed convolution by definition: a convolution of the stride-dilated input."""
  if padding == 'SAME':  # lax.conv_transpose's low / high padding of the dilated input
    padding = [(k - 1 if s > k - 1 else -(-(k + s - 2) // 2),) for k, s in zip(kernel_size,
                                                                            strides)]
    padding = [(low, k + s - 2 - low) for (low,), k, s in zip(padding, kernel_size, strides)]
  return lambda x, kernel: _nhwc_conv(x, kernel, (1, 1), padding, lhs_dilation=strides)


# Every convolution the networks build, as they build it, with the inputs of its shape class.
LAYER_CLASSES = {
    '3x3 (U-Net, GAN: Conv3x3)': (lambda: layers.Conv3x3(5, use_bias=False), (2, 8, 6, 4),
                                  lambda x, k: _nhwc_conv(x, k)),
    '3x3 stride 2 (Zhang)': (lambda: nn.Conv(5, (3, 3), strides=2, padding=[(1, 1)] * 2),
                             (2, 8, 8, 3), lambda x, k: _nhwc_conv(x, k, (2, 2), [(1, 1)] * 2)),
    '3x3 dilation 2 (Zhang)': (lambda: nn.Conv(4, (3, 3), padding=[(2, 2)] * 2,
                                               kernel_dilation=2),
                               (2, 7, 9, 3), lambda x, k: _nhwc_conv(x, k, padding=[(2, 2)] * 2,
                                                                     dilation=(2, 2))),
    '4x4 stride 2 SAME (GAN discriminator)': (lambda: nn.Conv(4, (4, 4), strides=2),
                                              (2, 8, 8, 3), lambda x, k: _nhwc_conv(x, k, (2, 2))),
    '1x1 (U-Net, Zhang heads)': (lambda: nn.Conv(3, (1, 1)), (2, 5, 4, 6),
                                 lambda x, k: _nhwc_conv(x, k)),
    '4x4 transposed stride 2 (Zhang)': (
        lambda: layers.ConvTranspose(4, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2))),
        (2, 4, 5, 3), _definition_of_transposed((4, 4), (2, 2), [(2, 2), (2, 2)])),
    '2x2 transposed stride 2 (U-Net)': (lambda: layers.ConvTranspose(3, (2, 2), strides=(2, 2)),
                                        (2, 4, 3, 5),
                                        _definition_of_transposed((2, 2), (2, 2), 'SAME')),
    '3x3 transposed stride 2 SAME': (lambda: layers.ConvTranspose(2, (3, 3), strides=(2, 2)),
                                     (1, 5, 4, 3),
                                     _definition_of_transposed((3, 3), (2, 2), 'SAME')),
}


@pytest.mark.parametrize('name', LAYER_CLASSES)
def test_every_conv_class_matches_conv_general_dilated_forward_and_gradients(name):
  """Output, input gradient and kernel gradient of each layer as the models build it (on
  this backend's formulation) against lax.conv_general_dilated written out."""
  make_layer, shape, reference = LAYER_CLASSES[name]
  layer = make_layer()
  x = jax.random.normal(jax.random.PRNGKey(4), shape)
  params = jax.jit(layer.init)(jax.random.PRNGKey(5), x)['params']
  bias = params.get('bias', 0.0)
  probe = jax.random.normal(jax.random.PRNGKey(6),
                            jax.eval_shape(layer.apply, {'params': params}, x).shape)
  ours, theirs = _outputs_and_gradients(
      lambda x, kernel: layer.apply({'params': {**params, 'kernel': kernel}}, x),
      lambda x, kernel: reference(x, kernel) + bias, x, params['kernel'], probe)
  np.testing.assert_allclose(ours[0], theirs[0], atol=1e-5)
  for a, b in zip(ours[1], theirs[1]):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize('kernel,stride,padding', [
    (4, 2, ((2, 2), (1, 3))), (2, 2, 'SAME'), (3, 2, 'SAME'), (5, 2, 'VALID'), (3, 1, 'VALID')])
def test_strided_kernel_gradient_of_transposed_conv_equals_lax(kernel, stride, padding):
  """The CPU formulation itself, on any backend: lax.conv_transpose's own gradients."""
  x = jax.random.normal(jax.random.PRNGKey(7), (2, 5, 4, 3))
  k = jax.random.normal(jax.random.PRNGKey(8), (kernel, kernel, 3, 2))
  args = (stride, stride), padding

  def lax_transpose(x, k):
    return jax.lax.conv_transpose(x, k, *args, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  probe = jax.random.normal(jax.random.PRNGKey(9), jax.eval_shape(lax_transpose, x, k).shape)
  ours, ref = _outputs_and_gradients(
      lambda x, k: layers.conv_transpose_strided_grad(x, k, *args), lax_transpose, x, k, probe)
  np.testing.assert_allclose(ours[0], ref[0], atol=1e-5)
  for a, b in zip(ours[1], ref[1]):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_conv_transpose_has_flax_parameters():
  """Same names, shapes and initial values as nn.ConvTranspose: checkpoints and the released
  Zhang et al. weights load unchanged."""
  x = jnp.ones((1, 4, 4, 3))
  ours = layers.ConvTranspose(5, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))
  flax_layer = nn.ConvTranspose(5, (4, 4), strides=(2, 2), padding=[(2, 2), (2, 2)])
  a, b = (m.init(jax.random.PRNGKey(0), x) for m in (ours, flax_layer))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(p, q)


def test_max_pool_matches_flax_forward_and_gradient_through_relu():
  x = jax.random.normal(jax.random.PRNGKey(10), (2, 6, 8, 3))
  probe = jax.random.normal(jax.random.PRNGKey(11), (2, 3, 4, 3))

  def objective(pool):
    return lambda x: jnp.sum(pool(nn.relu(x)) * probe)  # ties at 0, as in the U-Net

  def flax_pool(x):
    return nn.max_pool(x, (2, 2), strides=(2, 2))

  np.testing.assert_array_equal(layers.max_pool_2x2(x), flax_pool(x))
  np.testing.assert_allclose(jax.grad(objective(layers.max_pool_2x2))(x),
                             jax.grad(objective(flax_pool))(x), atol=1e-6)


def test_taps_conv_under_vmap_over_kernels():
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 1, 2, 6, 5))
  kernels = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 3, 2, 4))
  ours = jax.jit(jax.vmap(jax.grad(lambda x, k: jnp.sum(layers.conv3x3_taps(x, k) ** 2), 1)))(
      x, kernels)
  ref = jax.jit(jax.vmap(jax.grad(lambda x, k: jnp.sum(_reference_conv_nchw(x, k) ** 2), 1)))(
      x, kernels)
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)


def test_dropout_keeps_the_rounded_probability_and_the_expectation():
  x = jnp.full((64, 32, 33), 2.0)  # an odd last side: the two halves of a draw cross rows
  layer = layers.Dropout(0.1)
  keep = 58982 / 65536  # round(0.9 * 65536) / 65536
  out = layer.apply({}, x, rngs={'dropout': jax.random.PRNGKey(0)})
  kept = np.asarray(out) != 0
  np.testing.assert_allclose(np.asarray(out)[kept], 2.0 / keep, rtol=1e-6)
  n = kept.size
  assert abs(kept.mean() - keep) < 5 * np.sqrt(keep * (1 - keep) / n)  # binomial, 5 sigma
  # Both 16-bit halves of a draw are used: neither half of the flat array is all kept.
  assert not kept.reshape(-1)[: n // 2].all() and not kept.reshape(-1)[n // 2:].all()
  again = layer.apply({}, x, rngs={'dropout': jax.random.PRNGKey(0)})
  other = layer.apply({}, x, rngs={'dropout': jax.random.PRNGKey(1)})
  np.testing.assert_array_equal(out, again)
  assert (np.asarray(other) != 0).tolist() != kept.tolist()
  np.testing.assert_array_equal(layers.Dropout(0.1, deterministic=True).apply({}, x), x)
