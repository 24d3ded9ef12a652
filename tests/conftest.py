"""Every test sees 4 fake CPU devices, so sharded code paths run without a GPU.

XLA reads the flag once, when JAX first initializes its backend: it must be set before any
test imports jax. Subprocesses started by tests inherit it.

The session shares one fresh persistent compilation cache with the run.py subprocesses it
starts: the end-to-end tests run the same experiments several times (a run and its resume,
a failed command and its correction), and each compiles once instead of every time. The
cache is new per session, so nothing compiled by other code is ever reused, and the process
that made it removes it when the session ends.
"""

import os
import shutil
import tempfile

import pytest

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# The first pytest process makes the cache; pytest-xdist workers inherit its environment.
_CACHE_VARIABLE = 'COLORJAX_TEST_XLA_CACHE'
_CACHE_MADE_HERE = _CACHE_VARIABLE not in os.environ
if _CACHE_MADE_HERE:
  os.environ[_CACHE_VARIABLE] = tempfile.mkdtemp(prefix='colorjax-test-xla-cache-')
os.environ['JAX_COMPILATION_CACHE_DIR'] = os.environ[_CACHE_VARIABLE]
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.5'


def pytest_sessionfinish():
  if _CACHE_MADE_HERE:
    shutil.rmtree(os.environ.pop(_CACHE_VARIABLE), ignore_errors=True)


@pytest.fixture(scope='session')
def bins_313():
  """313 bins as the release has: the sRGB gamut set (261) and the 52 step-10 grid cells
  nearest to it outside (the released file itself is not on this machine)."""
  import numpy as np

  from colorjax import quantize
  inside = quantize.gamut_bins()
  grid = np.stack(np.meshgrid(np.arange(-110, 111, 10), np.arange(-110, 121, 10),
                              indexing='ij'), -1).reshape(-1, 2).astype(np.float32)
  outside = grid[[not np.any(np.all(inside == g, axis=1)) for g in grid]]
  distance = np.min(np.linalg.norm(outside[:, None] - inside[None], axis=-1), axis=1)
  return np.concatenate([inside, outside[np.argsort(distance, kind='stable')[:52]]])


@pytest.fixture(scope='session')
def zhang_run(tmp_path_factory):
  """(workdir, config, state): a zhang_softmax workdir with a tiny network (random weights,
  the head scaled 20x so that it predicts colours) as a run leaves it, 32x32 crops."""
  from colorjax.families import zhang as family
  from colorjax.train import optim
  from tests import saved_runs
  root = tmp_path_factory.mktemp('zhang')
  config, state = saved_runs.zhang_smoke_run(
      root, {'width': '0.0625', 'data.crop': '32'},
      lambda config: saved_runs.numpy_state(family.network(config, family.bins(config, root)),
                                            optim.make_optimizer(config.optimizer),
                                            (1, 32, 32, 1)), 20)
  return root, config, state
