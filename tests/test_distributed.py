"""Several processes, one run: two real run.py processes with 2 fake CPU devices each, joined
by jax.distributed on 127.0.0.1, train exactly as one process with 4 devices does, and when
both are killed after a checkpoint, the same commands resume them to the unbroken result."""

import contextlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from colorjax import distributed
from colorjax.errors import UsageError
from colorjax.train import checkpoint, throughput

ROOT = pathlib.Path(__file__).resolve().parent.parent
TIMEOUT_S = 300  # per launch: a guard against a hung collective (each test takes ~40 s alone,
                 # 120+ s on 2 cores shared with other jobs)
TINY_CNN = ['--experiment=norm_ablation', '--config.image_scale=0.25',
            '--config.schemes=none,unit', '--config.seeds=0,1', '--config.num_steps=150',
            '--config.steps_per_call=10', '--config.log_every=10', '--config.checkpoint_every=10']
# SGD: Adam's first step is lr * sign(gradient), which float rounding flips for the few
# gradients that are ~0, so two layouts that agree to 1e-7 can differ by 2 lr there.
ZHANG_ONE_STEP = ['--experiment=zhang_softmax:smoke', '--config.num_steps=1',
                  '--config.checkpoint_every=1', '--config.log_every=1',
                  '--config.prior_batches=1', '--config.data.crop=32',
                  "--config.optimizer={'name': 'sgd', 'learning_rate': 0.1}"]


def _env(devices):
  """This environment with `devices` fake CPU devices per process."""
  flag = '--xla_force_host_platform_device_count'
  return {**os.environ, 'JAX_PLATFORMS': 'cpu',
          'XLA_FLAGS': re.sub(rf'{flag}=\d+', f'{flag}={devices}', os.environ['XLA_FLAGS'])}


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def _two_processes(args, workdir, logs):
  """Start the two processes of one run; on the way out, whatever happened, kill what is
  still running (each in its own session, so nothing it started survives either)."""
  port = _free_port()
  processes = []
  try:
    for index in range(2):
      with open(logs / f'process_{index}.log', 'w') as log:
        processes.append(subprocess.Popen(
            [sys.executable, 'run.py', *args, f'--workdir={workdir}',
             f'--coordinator=127.0.0.1:{port}', '--num_processes=2', f'--process_id={index}'],
            cwd=ROOT, env=_env(2), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))
    yield processes
  finally:
    for process in processes:  # all at once: a survivor stops by itself within milliseconds
      if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    for process in processes:
      process.wait()


def _run_two(args, workdir, logs):
  with _two_processes(args, workdir, logs) as processes:
    deadline = time.monotonic() + TIMEOUT_S
    for process in processes:
      process.wait(timeout=max(1, deadline - time.monotonic()))
  for index, process in enumerate(processes):
    assert process.returncode == 0, (logs / f'process_{index}.log').read_text()[-3000:]
  return [(logs / f'process_{index}.log').read_text() for index in range(2)]


def _run_one(args, workdir):
  result = subprocess.run([sys.executable, 'run.py', *args, f'--workdir={workdir}'], cwd=ROOT,
                          env=_env(4), capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]


def _latest_checkpoint(workdir):
  """(step, arrays) of the latest checkpoint, restored onto one local device whatever layout
  of processes and devices wrote it."""
  checkpoints = checkpoint.Checkpoints(workdir, max_to_keep=None)
  try:
    step = checkpoints.latest_step()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            checkpoints.manager.item_metadata(step).tree)
    return step, jax.tree.map(np.asarray, checkpoints.manager.restore(
        step, args=ocp.args.StandardRestore(abstract)))
  finally:
    checkpoints.close()


def _assert_same_training(workdir, expected_workdir):
  step, state = _latest_checkpoint(workdir)
  expected_step, expected = _latest_checkpoint(expected_workdir)
  assert step == expected_step
  for part in ('params', 'batch_stats'):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-5),
                 state.get(part, {}), expected.get(part, {}))


def _without_timing(path):
  """A metrics.jsonl's rows less the wall-clock figures, which no two runs share."""
  return [{k: v for k, v in json.loads(line).items() if k not in throughput.FIELDS}
          for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_train_as_one_with_four_devices_even_when_both_are_killed(tmp_path):
  """The tiny CNN over 2 processes x 2 devices, killed after its first checkpoint and
  started again, ends where one process with 4 devices ends unbroken."""
  workdir = tmp_path / 'killed'
  with _two_processes(TINY_CNN, workdir, tmp_path) as processes:
    deadline = time.monotonic() + TIMEOUT_S
    while not checkpoint.saved_steps(workdir) and time.monotonic() < deadline:
      time.sleep(0.02)
  # Process 1 may see process 0 die first and stop by itself (exit status 1).
  assert processes[0].returncode == -signal.SIGKILL, 'a run ended before the kill'
  assert processes[1].returncode in (-signal.SIGKILL, 1), 'a run ended before the kill'
  logs = _run_two(TINY_CNN, workdir, tmp_path)
  assert 'report:' in logs[0] and 'report:' not in logs[1]  # process 0 alone reports
  assert 'step/s' not in logs[1]  # ... and shows progress
  _run_one(TINY_CNN, tmp_path / 'unbroken')
  _assert_same_training(workdir, tmp_path / 'unbroken')
  # The runs train on separate devices, so nothing is summed across processes: bit for bit.
  assert (_without_timing(workdir / 'metrics.jsonl')
          == _without_timing(tmp_path / 'unbroken' / 'metrics.jsonl'))
  assert (workdir / 'report.md').is_file()


@pytest.mark.slow
def test_when_one_process_dies_the_other_says_so_and_exits_at_once(tmp_path):
  long_run = [*TINY_CNN[:-4], '--config.num_steps=100000', '--config.steps_per_call=10',
              '--config.log_every=10', '--config.checkpoint_every=50']
  with _two_processes(long_run, tmp_path / 'w', tmp_path) as processes:
    deadline = time.monotonic() + TIMEOUT_S
    while not checkpoint.saved_steps(tmp_path / 'w') and time.monotonic() < deadline:
      time.sleep(0.05)
    os.killpg(processes[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    processes[0].wait(timeout=60)
    seconds = time.monotonic() - killed
  log = (tmp_path / 'process_0.log').read_text()
  assert processes[0].returncode == 1 and seconds < 20, (seconds, log[-2000:])
  assert 'error: process 0 of 2: ' in log


@pytest.mark.slow
def test_one_zhang_step_over_two_processes_equals_one_process(tmp_path):
  """BatchNorm statistics and gradients over the global batch, summed across processes."""
  logs = _run_two(ZHANG_ONE_STEP, tmp_path / 'two', tmp_path)
  assert 'report:' in logs[0] and 'report:' not in logs[1]
  _run_one(ZHANG_ONE_STEP, tmp_path / 'one')
  _assert_same_training(tmp_path / 'two', tmp_path / 'one')


@pytest.mark.parametrize('kwargs,message', [
    ({'coordinator': '127.0.0.1:1234'}, 'needs all of --coordinator'),
    ({'coordinator': 'nohost', 'num_processes': 2, 'process_id': 0}, 'use HOST:PORT'),
    ({'coordinator': 'h:1', 'num_processes': 2, 'process_id': 2}, 'must be in 0..1'),
])
def test_incomplete_multi_process_flags_are_usage_errors(kwargs, message, monkeypatch):
  monkeypatch.delenv('JAX_COORDINATOR_ADDRESS', raising=False)
  with pytest.raises(UsageError, match=message):
    distributed.initialize(**kwargs)


def test_cluster_environment_is_recognized_only_for_multi_task_jobs(monkeypatch):
  slurm = {'SLURM_JOB_ID': '7', 'SLURM_STEP_NODELIST': 'node[1-2]', 'SLURM_NTASKS': '2',
           'SLURM_PROCID': '1', 'SLURM_LOCALID': '0'}
  for name, value in slurm.items():
    monkeypatch.setenv(name, value)
  assert distributed.cluster_environment() == 'SLURM'
  monkeypatch.setenv('SLURM_NTASKS', '1')  # an interactive allocation: one process
  assert distributed.cluster_environment() is None


@pytest.mark.slow
def test_a_signal_to_one_process_stops_both_at_the_same_saved_step(tmp_path):
  """A scheduler may signal one process first: the processes agree on the signal at the
  next step boundary (a cross-process max), so both save the same step and say so."""
  long_run = [*TINY_CNN[:-4], '--config.num_steps=100000', '--config.steps_per_call=10',
              '--config.log_every=10', '--config.checkpoint_every=100000']
  workdir = tmp_path / 'w'
  with _two_processes(long_run, workdir, tmp_path) as processes:
    deadline = time.monotonic() + TIMEOUT_S
    while b'step/s' not in (tmp_path / 'process_0.log').read_bytes():  # training: steps logged
      assert time.monotonic() < deadline and processes[0].poll() is None
      time.sleep(0.05)
    processes[1].send_signal(signal.SIGTERM)
    for process in processes:
      process.wait(timeout=60)
  logs = [(tmp_path / f'process_{i}.log').read_text() for i in range(2)]
  steps = [re.search(r'stopped by SIGTERM after step (\d+), which is saved', log) for log in logs]
  assert all(steps), [log[-2000:] for log in logs]
  assert [p.returncode for p in processes] == [128 + signal.SIGTERM] * 2
  step = int(steps[0].group(1))
  assert int(steps[1].group(1)) == step and checkpoint.saved_steps(workdir) == [step]
