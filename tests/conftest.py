"""Every test sees 4 fake CPU devices, so sharded code paths run without a GPU.

XLA reads the flag once, when JAX first initializes its backend: it must be set before any
test imports jax. Subprocesses started by tests inherit it.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=4').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
