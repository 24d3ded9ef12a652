"""Every test sees 4 fake CPU devices, so sharded code paths run without a GPU.

XLA reads the flag once, when JAX first initializes its backend: it must be set before any
test imports jax. Subprocesses started by tests inherit it.

The session shares one fresh persistent compilation cache with the run.py subprocesses it
starts: the end-to-end tests run the same experiments several times (a run and its resume,
a failed command and its correction), and each compiles once instead of every time. The
cache is new per session, so nothing compiled by other code is ever reused.
"""

import os
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# pytest-xdist workers share the cache of their run (one id per `pytest -n` invocation).
_RUN_ID = os.environ.get('PYTEST_XDIST_TESTRUNUID')
os.environ['JAX_COMPILATION_CACHE_DIR'] = (
    os.path.join(tempfile.gettempdir(), f'colorjax-test-xla-cache-{_RUN_ID}') if _RUN_ID
    else tempfile.mkdtemp(prefix='colorjax-test-xla-cache-'))
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.5'
