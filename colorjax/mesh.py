"""Data parallelism: one mesh axis, 'data', over every device of every process. Batches are
split over it, states replicated; XLA inserts the gradient all-reduce itself."""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from colorjax import xla_cpu


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh, axis 'data', over the given devices (default: every device of every process)."""
  return Mesh(np.asarray(devices if devices is not None else jax.devices()), ('data',))


def replicate(state, mesh: Mesh):
  """Place the state on every device of the mesh, as shard_train_step returns it; a state
  left where it was created would make the second step compile again."""
  return jax.device_put(state, NamedSharding(mesh, P()))


def shard_train_step(train_step, mesh: Mesh):
  """jit a (state, batch) step data-parallel: batch split over 'data', state replicated.

  The loss is a mean over the global batch, so XLA inserts the gradient all-reduce itself.
  The old state is donated: its buffers are reused for the new one.
  """
  replicated = NamedSharding(mesh, P())
  return xla_cpu.jit(train_step, in_shardings=(replicated, NamedSharding(mesh, P('data'))),
                     out_shardings=(replicated, replicated), donate_argnums=0)
