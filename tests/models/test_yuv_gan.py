"""The YUV GAN's networks: shapes and parameter counts (the write-up's and the release's),
the Y channel kept and the noise used."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


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
