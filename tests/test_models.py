"""Model shapes, parameter counts, and the taps convolution against lax.conv."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from colorjax.models import layers
from colorjax.models.tiny_cnn import TinyCNN


def _reference_conv_nchw(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), 'SAME',
                                      dimension_numbers=('NCHW', 'HWIO', 'NCHW'))


@pytest.mark.parametrize('cin,cout,h,w', [(1, 6, 7, 9), (6, 6, 5, 4), (6, 2, 8, 8)])
def test_taps_conv_matches_lax_conv_forward_and_gradients(cin, cout, h, w):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, (2, cin, h, w))
  kernel = jax.random.normal(kk, (3, 3, cin, cout))
  probe = jax.random.normal(kg, (2, cout, h, w))
  np.testing.assert_allclose(layers.conv3x3_taps(x, kernel), _reference_conv_nchw(x, kernel),
                             atol=1e-5)

  def objective(conv):
    return lambda x, k: jnp.sum(conv(x, k) * probe)

  ours = jax.grad(objective(layers.conv3x3_taps), argnums=(0, 1))(x, kernel)
  ref = jax.grad(objective(_reference_conv_nchw), argnums=(0, 1))(x, kernel)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)


def test_taps_conv_under_vmap_over_kernels():
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 1, 2, 6, 5))
  kernels = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 3, 2, 4))
  ours = jax.vmap(jax.grad(lambda x, k: jnp.sum(layers.conv3x3_taps(x, k) ** 2), 1))(x, kernels)
  ref = jax.vmap(jax.grad(lambda x, k: jnp.sum(_reference_conv_nchw(x, k) ** 2), 1))(x, kernels)
  np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-5)


def test_tiny_cnn_shapes_and_parameter_count():
  l_in = jnp.zeros((2, 10, 14, 1))
  variables = TinyCNN(channels=6).init(jax.random.PRNGKey(0), l_in)
  count = sum(x.size for x in jax.tree.leaves(variables['params']))
  assert count == (9 * 1 * 6 + 6) + (9 * 6 * 6 + 6) + (9 * 6 * 2 + 2)  # = 500
  assert TinyCNN(channels=6).apply(variables, l_in).shape == (2, 10, 14, 2)


def test_tiny_cnn_formulations_share_parameters_and_agree():
  l_in = jax.random.uniform(jax.random.PRNGKey(3), (2, 9, 11, 1))
  variables = TinyCNN(channels=5, taps=False).init(jax.random.PRNGKey(0), l_in)
  taps_variables = TinyCNN(channels=5, taps=True).init(jax.random.PRNGKey(0), l_in)
  assert jax.tree.structure(variables) == jax.tree.structure(taps_variables)
  np.testing.assert_allclose(TinyCNN(channels=5, taps=True).apply(variables, l_in),
                             TinyCNN(channels=5, taps=False).apply(variables, l_in), atol=1e-5)


@pytest.mark.parametrize('size', [64, 176, 256])
@pytest.mark.parametrize('outputs', [261, 2], ids=['softmax', 'regression'])
def test_zhang_net_output_is_at_quarter_resolution(size, outputs):
  from colorjax.models.zhang import ZhangNet
  model = ZhangNet(outputs, width=1 / 16)
  l_in = jnp.zeros((2, size, size, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), l_in[:1]))
  output = jax.eval_shape(lambda v: model.apply(v, l_in), variables)
  assert output.shape == (2, size // 4, size // 4, outputs)


def test_zhang_net_full_width_has_the_papers_block_structure():
  """Convs per block 2, 2, 3, 3, 3, 3, 3 (+ BatchNorm), then 1 transposed + 2 convs + head."""
  from colorjax.models.zhang import ZhangNet
  variables = jax.eval_shape(lambda: ZhangNet(313).init(jax.random.PRNGKey(0),
                                                         jnp.zeros((1, 64, 64, 1))))
  blocks = [k for k in variables['params'] if k.startswith('ConvStack')]
  convs = [len([k for k in variables['params'][b] if k.startswith('Conv_')]) for b in blocks]
  assert convs == [2, 2, 3, 3, 3, 3, 3]
  assert all('BatchNorm_0' in variables['batch_stats'][b] for b in blocks)
  head = variables['params']['Conv_2']['kernel']
  assert head.shape == (1, 1, 256, 313)
