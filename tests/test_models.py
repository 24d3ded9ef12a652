"""Model shapes, parameter counts, and the fast conv formulations against lax.conv."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from colorjax import xla_flags
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
  params = layer.init(jax.random.PRNGKey(5), x)['params']
  bias = params.get('bias', 0.0)
  probe = jax.random.normal(jax.random.PRNGKey(6), layer.apply({'params': params}, x).shape)

  def ours(x, kernel):
    return jnp.sum(layer.apply({'params': {**params, 'kernel': kernel}}, x) * probe)

  def theirs(x, kernel):
    return jnp.sum((reference(x, kernel) + bias) * probe)

  np.testing.assert_allclose(layer.apply({'params': params}, x),
                             reference(x, params['kernel']) + bias, atol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1))(x, params['kernel']),
                  jax.grad(theirs, (0, 1))(x, params['kernel'])):
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

  y = lax_transpose(x, k)
  probe = jax.random.normal(jax.random.PRNGKey(9), y.shape)
  np.testing.assert_allclose(layers.conv_transpose_strided_grad(x, k, *args), y, atol=1e-5)
  ours = jax.grad(lambda x, k: jnp.sum(layers.conv_transpose_strided_grad(x, k, *args) * probe),
                  (0, 1))(x, k)
  ref = jax.grad(lambda x, k: jnp.sum(lax_transpose(x, k) * probe), (0, 1))(x, k)
  for a, b in zip(ours, ref):
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


def _conv_geometry(jaxpr):
  """(window strides, kernel dilation) of every convolution in a jaxpr, nested ones too."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'conv_general_dilated':
      found.append((tuple(eqn.params['window_strides']), tuple(eqn.params['rhs_dilation'])))
    for value in eqn.params.values():
      inner = getattr(value, 'jaxpr', value)
      if hasattr(inner, 'eqns'):
        found += _conv_geometry(inner)
  return found


def test_zhang_net_dilates_blocks_5_and_6_and_strides_blocks_1_to_3():
  """The paper's geometry, read from the traced network: 6 convs with dilation 2 (blocks 5
  and 6, 3 each), 3 with stride 2 (the last of blocks 1-3); the rest plain. Setting a
  dilation to 1 or dropping a stride fails here."""
  from colorjax.models.zhang import ZhangNet
  model = ZhangNet(313, width=1 / 16)
  x = jnp.zeros((1, 64, 64, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  geometry = _conv_geometry(jax.make_jaxpr(model.apply)(variables, x).jaxpr)
  assert len(geometry) == 19 + 1 + 2 + 1  # blocks 1-7, the transposed conv, 2 convs, head
  assert [g for g in geometry if g[1] == (2, 2)] == [((1, 1), (2, 2))] * 6
  assert [i for i, g in enumerate(geometry) if g[0] == (2, 2)] == [1, 3, 6]


def _gan_parameter_count_by_hand(height, width, noise_layers):
  """Dense noise -> plane, then 3x3 convs without bias, each + BatchNorm (scale, bias);
  input channels: Y, the previous layer's features, and the noise plane where fed."""
  count = 100 * height * width + height * width
  previous = 0
  for i, features in enumerate((130, 66, 65, 65, 33)):
    inputs = 1 + previous + (1 if i < noise_layers else 0)
    count += 9 * inputs * features + 2 * features
    previous = features
  return count + 9 * (1 + previous) * 2


def _gan_models():
  from colorjax.models.yuv_gan import Discriminator, Generator
  return Generator, Discriminator


@pytest.mark.parametrize('noise_layers', [1, 3])
def test_gan_shapes_and_parameter_counts_at_64(noise_layers):
  generator, discriminator = _gan_models()
  y, noise = jnp.zeros((2, 64, 64, 1)), jnp.zeros((2, 100))
  g_vars = jax.eval_shape(lambda: generator(noise_layers).init(jax.random.PRNGKey(0), y, noise))
  d_vars = jax.eval_shape(lambda: discriminator().init(jax.random.PRNGKey(0),
                                                       jnp.zeros((2, 64, 64, 3))))
  count = lambda v: sum(x.size for x in jax.tree.leaves(v['params']))
  assert count(g_vars) == _gan_parameter_count_by_hand(64, 64, noise_layers)
  # 4x4 convs 3-64-128-256-512 (BatchNorm instead of bias), then dense 512 * 4 * 4 -> 1.
  d_expected = sum(16 * i * o + 2 * o for i, o in ((3, 64), (64, 128), (128, 256), (256, 512)))
  assert count(d_vars) == d_expected + 512 * 4 * 4 + 1
  out = jax.eval_shape(lambda v: generator(noise_layers).apply(v, y, noise), g_vars)
  assert out.shape == (2, 64, 64, 3)


def test_authors_gan_has_the_released_parameter_counts():
  """ccyyatnet/COLORGAN at 64x64: G 895,350 (dense 100 -> 64 x 64 noise plane with
  BatchNorm; 7x7 then 5x5 convs of 128, 64, 64, 64, 32 with biases and BatchNorm; 5x5 conv
  to UV), D 4,832,769 (5x5 stride-2 convs 64-128-256-512 with biases, BatchNorm from the
  second, dense 8192 -> 64 -> 1). A 4x4 kernel, a BatchNorm on D's first layer or a missing
  hidden dense layer changes them."""
  from colorjax.models.yuv_gan import LAYOUTS
  generator, discriminator = _gan_models()
  layout = LAYOUTS['authors']
  count = lambda v: sum(x.size for x in jax.tree.leaves(v['params']))
  g_vars = jax.eval_shape(lambda: generator(1, layout=layout).init(
      jax.random.PRNGKey(0), jnp.zeros((2, 64, 64, 1)), jnp.zeros((2, 100))))
  d_vars = jax.eval_shape(lambda: discriminator(layout=layout).init(
      jax.random.PRNGKey(0), jnp.zeros((2, 64, 64, 3))))
  assert (count(g_vars), count(d_vars)) == (895_350, 4_832_769)
  assert 'BatchNorm_0' in g_vars['params'] and 'Conv_0' in g_vars['params']


def test_gan_shapes_at_other_multiples_of_16_and_a_clear_error_otherwise():
  generator, discriminator = _gan_models()
  y, noise = jnp.zeros((1, 48, 80, 1)), jnp.zeros((1, 100))
  g_out = jax.eval_shape(lambda: generator().init_with_output(jax.random.PRNGKey(0), y, noise)[0])
  d_out = jax.eval_shape(lambda: discriminator().init_with_output(
      jax.random.PRNGKey(0), jnp.zeros((3, 48, 80, 3)))[0])
  assert g_out.shape == (1, 48, 80, 3) and d_out.shape == (3,)
  with pytest.raises(ValueError, match='multiples of 16'):
    generator().init(jax.random.PRNGKey(0), jnp.zeros((1, 40, 64, 1)), noise)


def test_generator_keeps_y_exactly_and_noise_makes_the_difference():
  generator, _ = _gan_models()
  model = generator()
  y = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 1))
  noise_a, noise_b = jax.random.uniform(jax.random.PRNGKey(1), (2, 2, 100))
  variables = jax.jit(model.init)(jax.random.PRNGKey(2), y, noise_a)
  apply = jax.jit(model.apply)  # one compile, instead of one per operation eagerly
  out_a = apply(variables, y, noise_a)
  np.testing.assert_array_equal(out_a[..., 0], y[..., 0])
  np.testing.assert_array_equal(out_a, apply(variables, y, noise_a))
  out_b = apply(variables, y, noise_b)
  assert float(jnp.mean(jnp.abs(out_a[..., 1:] - out_b[..., 1:]))) > 1e-4
  uv_max = np.max(np.abs(np.asarray(jnp.concatenate([out_a, out_b])[..., 1:])), axis=(0, 1, 2))
  assert np.all(uv_max <= [0.436, 0.615])  # tanh scaled to the BT.601 chroma range


def test_xla_flags_added_once_and_never_over_the_users(monkeypatch):
  monkeypatch.setattr(xla_flags.importlib.metadata, 'version', lambda _: xla_flags.MEASURED_JAXLIB)
  environ = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  xla_flags.add_to_environment(environ)
  xla_flags.add_to_environment(environ)
  assert environ['XLA_FLAGS'].split() == ['--xla_force_host_platform_device_count=4', *(
      f'{name}={value}' for name, value in xla_flags.CPU_FLAGS.items())]
  users = {'XLA_FLAGS': f'{next(iter(xla_flags.CPU_FLAGS))}=dot'}
  xla_flags.add_to_environment(users)
  assert users['XLA_FLAGS'] == f'{next(iter(xla_flags.CPU_FLAGS))}=dot'
  monkeypatch.setattr(xla_flags.importlib.metadata, 'version', lambda _: '0.0.1')
  other_version = {}
  xla_flags.add_to_environment(other_version)
  assert other_version == {}


def test_import_colorjax_keeps_convolutions_out_of_ynnpack():
  """In a fresh process: XLA compiles a convolution as its own, not a YNNPACK fusion (the
  flag reached XLA before its first compilation)."""
  code = ('import colorjax, jax, jax.numpy as jnp\n'
          'x, k = jnp.ones((2, 16, 16, 32)), jnp.ones((3, 3, 32, 32))\n'  # YNNPACK takes it
          "conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', "
          "dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
          'print(jax.jit(conv).lower(x, k).compile().as_text())')
  environ = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  hlo = subprocess.run([sys.executable, '-c', code], env=environ, capture_output=True,
                       text=True, check=True).stdout
  assert 'convolution(' in hlo
  assert 'ynn' not in hlo


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
