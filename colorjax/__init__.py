"""colorjax: automatic image colorization in JAX/Flax."""
