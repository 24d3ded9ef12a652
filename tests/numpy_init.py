"""Networks for tests that compile little: variables filled by NumPy as Flax's default
initializers fill them (LeCun-normal kernels; biases 0; BatchNorm's scale 1, shift 0,
statistics 0 and 1), since `model.init` compiles a random generator per kernel shape (10-20 s
for the larger networks on 2 cores); and a jit without LLVM optimization, which compiles
these models 2-3x faster."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

jit_unoptimized = functools.partial(jax.jit,
                                    compiler_options={'xla_backend_optimization_level': 0})


def count(tree) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


def abstract(model, shape):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


def uniform(shape, seed):
  return np.random.default_rng(seed).random(shape, np.float32)


def variables(model, shape, seed=0) -> dict:
  """The model's variables for an input of `shape`, as Flax's initializers draw them."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      fan_in = np.prod(leaf.shape[:-1])
      return rng.normal(0.0, np.sqrt(1.0 / fan_in), leaf.shape).astype(np.float32)
    return np.full(leaf.shape, 1.0 if name in ('scale', 'var') else 0.0, np.float32)

  return jax.tree_util.tree_map_with_path(fill, abstract(model, shape))
