"""One run over several processes (hosts): joining JAX's multi-controller runtime, and the
few things only one process does.

Every host runs the same run.py command. jax.distributed.initialize joins them; from then on
jax.devices() lists the devices of every host, the data mesh spans them all, each process
feeds its share of every global batch (data.py), and each jitted step is one program over
all devices. Orbax checkpoints are written and restored by all processes together; reports,
figures, metrics.jsonl and progress bars come from process 0 alone.
"""

import os
import sys
import threading
import time

import jax
import numpy as np
from jax.experimental import multihost_utils

from colorjax.errors import UsageError

# The variables jax.distributed.initialize() reads to configure itself inside a SLURM step.
_SLURM = ('SLURM_JOB_ID', 'SLURM_STEP_NODELIST', 'SLURM_NTASKS', 'SLURM_PROCID',
          'SLURM_LOCALID')


_joined = False  # set once jax.distributed.initialize has run in this process
HEARTBEAT_TIMEOUT_S = 10  # a process silent this long is gone (JAX's default: 100 s)
WATCH_INTERVAL_S = 1.0


def _watch_peers():
  """End this process, saying so with its prefix, as soon as another process of the run is
  gone. Otherwise a survivor waits inside its next collective until JAX's own heartbeat
  timeout aborts it, without a word of which process failed."""
  from jax._src import distributed as jax_distributed  # the client has no public handle
  client = getattr(jax_distributed.global_state, 'client', None)
  if client is None or not hasattr(client, 'get_live_nodes'):
    return
  everyone = list(range(jax.process_count()))

  def watch():
    while True:
      time.sleep(WATCH_INTERVAL_S)
      try:
        live = set(client.get_live_nodes(everyone))
      except Exception:  # the coordinator (process 0) is gone
        live = set()
      gone = sorted(set(everyone) - live)
      if gone:
        print(f'error: {prefix()}process(es) {", ".join(map(str, gone))} of the run stopped, '
              'so this one stops too; run the same commands again to resume from the last '
              'checkpoint', file=sys.stderr, flush=True)
        os._exit(1)

  threading.Thread(target=watch, name='colorjax-watch-peers', daemon=True).start()


def cluster_environment() -> str | None:
  """The cluster manager whose variables describe a multi-process job here, if any."""
  if all(name in os.environ for name in _SLURM) and int(os.environ['SLURM_NTASKS']) > 1:
    return 'SLURM'
  if ('OMPI_MCA_orte_hnp_uri' in os.environ
      and int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1')) > 1):
    return 'Open MPI'
  return None


def initialize(coordinator=None, num_processes=None, process_id=None):
  """Join the multi-process run that the arguments (run.py's flags) or the cluster's
  environment describe; with neither, stay one process. JAX_COORDINATOR_ADDRESS stands in
  for `coordinator`, as in jax.distributed.initialize."""
  global _joined
  coordinator = coordinator or os.environ.get('JAX_COORDINATOR_ADDRESS')
  cluster = cluster_environment()
  if coordinator is None and num_processes is None and process_id is None:
    if cluster is not None:
      # JAX reads the cluster's variables itself.
      jax.distributed.initialize(heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
      _joined = True
      _watch_peers()
    return
  if cluster is None and (coordinator is None or num_processes is None or process_id is None):
    raise UsageError('a multi-process run needs all of --coordinator=HOST:PORT, '
                     '--num_processes=N and --process_id=I (or run it as a SLURM job step)')
  if coordinator is not None:
    host, _, port = coordinator.rpartition(':')
    if not host or not port.isdigit():
      raise UsageError(f"--coordinator={coordinator}: use HOST:PORT of process 0's machine, "
                       'e.g. --coordinator=10.0.0.1:1234')
  if num_processes is not None and (num_processes < 1 or process_id is None
                                    or not 0 <= process_id < num_processes):
    raise UsageError(f'--process_id={process_id} must be in 0..{num_processes - 1} for '
                     f'--num_processes={num_processes}')
  jax.distributed.initialize(coordinator, num_processes, process_id,
                             heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
  _joined = True
  _watch_peers()


def is_main() -> bool:
  """True in the process that writes reports, figures, logs and progress bars."""
  return jax.process_index() == 0


def prefix() -> str:
  """'process 1 of 2: ' once this process has joined a multi-process run (every process
  logs its own errors), else ''."""
  if not _joined:
    return ''
  return f'process {jax.process_index()} of {jax.process_count()}: '


def collective_failed(error: BaseException) -> str | None:
  """In a multi-process run, the one-line account of an error that means a collective with
  the other processes broke (one of them stopped); None for any other error."""
  if not (_joined and isinstance(error, jax.errors.JaxRuntimeError)):
    return None
  first_line = str(error).strip().splitlines()[0] if str(error).strip() else ''
  return (f'a collective with the other processes failed ({first_line[:160]}): another '
          'process of the run has stopped; see its output, then run the same commands again '
          'to resume from the last checkpoint')


def to_host(tree):
  """numpy copies of (global) arrays, in every process. An array that spans processes is
  gathered, a collective: every process must call this at the same point."""

  def one(x):
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)

  return jax.tree.map(one, tree)
