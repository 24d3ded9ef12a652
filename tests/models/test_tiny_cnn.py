"""The tiny CNN: shapes, parameter count, and its two conv formulations agreeing."""

import jax
import jax.numpy as jnp
import numpy as np

from colorjax.models.tiny_cnn import TinyCNN


def test_tiny_cnn_shapes_and_parameter_count():
  l_in = jnp.zeros((2, 10, 14, 1))
  model = TinyCNN(channels=6)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), l_in)
  count = sum(x.size for x in jax.tree.leaves(variables['params']))
  assert count == (9 * 1 * 6 + 6) + (9 * 6 * 6 + 6) + (9 * 6 * 2 + 2)  # = 500
  assert jax.eval_shape(model.apply, variables, l_in).shape == (2, 10, 14, 2)


def test_tiny_cnn_formulations_share_parameters_and_agree():
  l_in = jax.random.uniform(jax.random.PRNGKey(3), (2, 9, 11, 1))
  variables = jax.jit(TinyCNN(channels=5, taps=False).init)(jax.random.PRNGKey(0), l_in)
  taps_variables = jax.eval_shape(TinyCNN(channels=5, taps=True).init, jax.random.PRNGKey(0),
                                  l_in)
  assert jax.tree.structure(variables) == jax.tree.structure(taps_variables)
  np.testing.assert_allclose(jax.jit(TinyCNN(channels=5, taps=True).apply)(variables, l_in),
                             jax.jit(TinyCNN(channels=5, taps=False).apply)(variables, l_in),
                             atol=1e-5)
