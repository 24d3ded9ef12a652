"""Faults of a whole process, run as a user runs it: two runs on one workdir, a full disk,
reading a workdir whose run trains and prunes its checkpoints, preemption by SIGTERM."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from colorjax import configs, families, inference
from colorjax.train import checkpoint
from tests import commands
from tests.train.test_workdirs import hold_lock

pytestmark = pytest.mark.slow
SMALL = ['--config.image_scale=0.1', '--config.seeds=0', '--config.num_steps=20',
         '--config.steps_per_call=10', '--config.log_every=10', '--config.checkpoint_every=10']


def test_a_second_run_on_a_workdir_in_use_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
  holder = hold_lock(tmp_path)
  try:
    refused = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
    commands.assert_one_line(refused.returncode, refused.stderr,
                             'is in use by another run (host ')
    assert f'pid {holder.pid}' in refused.stderr
    assert not (tmp_path / 'config.json').exists() and not (tmp_path / 'checkpoints').exists()
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  taken_over = commands.run_py('--experiment=norm_ablation', f'--workdir={tmp_path}', *SMALL)
  assert taken_over.returncode == 0, taken_over.stderr
  steps = [json.loads(line)['step'] for line in (tmp_path / 'metrics.jsonl').open()]
  assert steps == list(range(20))  # every step once


def test_a_disk_that_fills_inside_an_orbax_save_is_one_line(tmp_path):
  """ENOSPC where Orbax itself writes, in its background thread: Orbax logs it with
  tracebacks, then raises it; only the one line remains."""
  code = ('import errno, os, sys\n'
          'from colorjax.cli import main\n'
          'makedirs = os.makedirs\n'
          'def full(path, *args, **kwargs):\n'
          '  if "orbax-checkpoint-tmp" in str(path):\n'
          '    raise OSError(errno.ENOSPC, "No space left on device", str(path))\n'
          '  return makedirs(path, *args, **kwargs)\n'
          'os.makedirs = full\n'
          'main.run(sys.argv[1:])\n')
  result = subprocess.run([sys.executable, '-c', code, '--experiment=norm_ablation',
                           f'--workdir={tmp_path}', *SMALL], cwd=commands.ROOT,
                          capture_output=True, text=True, timeout=300)
  commands.assert_one_line(result.returncode, result.stderr, 'the disk is full',
                           progress_bars=True)


def test_a_real_full_disk_is_one_line_and_the_run_resumes_over_its_torn_log(tmp_path):
  """A 150 kB tmpfs (in a user namespace of its own) fills during the second checkpoint's
  save, mid-way through a metrics.jsonl append; given room, the same command resumes."""
  workdir = tmp_path / 'workdir'
  workdir.mkdir()
  script = ('mount -t tmpfs -o size=150k tmpfs "$W" || exit 99\n'
            '"$@" 2>"$W.full"; echo $? >"$W.full_rc"\n'
            'mount -o remount,size=20m "$W" && "$@" 2>"$W.resumed"; echo $? >"$W.resumed_rc"\n'
            'cp "$W/metrics.jsonl" "$W.metrics"\n')
  command = [sys.executable, 'run.py', '--experiment=norm_ablation', f'--workdir={workdir}',
             *SMALL]
  shell = subprocess.run(['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', script,
                          'sh', *command], cwd=commands.ROOT, env={**os.environ, 'W': str(workdir)},
                         capture_output=True, text=True, timeout=300)
  if shell.returncode == 99 or not (tmp_path / 'workdir.full_rc').exists():
    pytest.skip(f'no tmpfs can be mounted here: {shell.stderr.strip()[-200:]}')
  output = {name: (tmp_path / f'workdir.{name}').read_text() for name in
            ('full', 'full_rc', 'resumed', 'resumed_rc', 'metrics')}
  commands.assert_one_line(int(output['full_rc']), output['full'], 'the disk is full',
                           progress_bars=True)
  assert int(output['resumed_rc']) == 0, output['resumed']
  assert [json.loads(line)['step'] for line in output['metrics'].splitlines()] == list(range(20))


def test_colorize_reads_a_whole_checkpoint_while_a_run_trains_and_prunes(tmp_path):
  """Training saves every 2 steps and keeps 2: a reader's step is often deleted under it
  (read through a CheckpointManager, 3 of 8 reads failed here)."""
  args = ['--experiment=zhang_softmax:smoke', f'--workdir={tmp_path}', '--config.num_steps=4000',
          '--config.log_every=2', '--config.checkpoint_every=2', '--config.prior_batches=1']
  trainer = subprocess.Popen([sys.executable, 'run.py', *args], cwd=commands.ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while not checkpoint.saved_steps(tmp_path) and time.monotonic() < deadline:
      time.sleep(0.05)
    network = families.network_spec(configs.load_config('zhang_softmax:smoke'), tmp_path)
    steps = []
    for _ in range(8):
      saved, step = inference._restore(network)
      steps.append(step)
      assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(saved['params']))
    assert trainer.poll() is None, 'the run ended before the reads: make it longer'
    assert steps == sorted(steps) and steps[-1] > steps[0]
  finally:
    trainer.kill()
    trainer.wait()


# Loop.checkpoint_every > num_steps: only the preemption saves before the end.
LONGER = ['--experiment=norm_ablation', *SMALL[:2], '--config.num_steps=400',
          '--config.steps_per_call=10', '--config.log_every=10', '--config.checkpoint_every=400']


def _final_arrays(workdir):
  step_dir = workdir / 'checkpoints' / str(checkpoint.saved_steps(workdir)[0])
  return jax.tree.leaves(ocp.PyTreeCheckpointer().restore(step_dir / 'default'))


@pytest.mark.filterwarnings('ignore:Sharding info not provided')
def test_sigterm_saves_the_step_in_flight_and_the_same_command_resumes_bit_for_bit(tmp_path):
  preempted = tmp_path / 'preempted'
  run = subprocess.Popen([sys.executable, 'run.py', *LONGER, f'--workdir={preempted}'],
                         cwd=commands.ROOT, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        (preempted / 'metrics.jsonl').exists() and (preempted / 'metrics.jsonl').stat().st_size):
      time.sleep(0.02)
    run.send_signal(signal.SIGTERM)  # training: its first steps are logged
    stderr = run.communicate(timeout=120)[1]
  finally:
    run.kill()
  lines = [line for line in commands.shown(stderr) if 'step/s' not in line]
  assert run.returncode == 128 + signal.SIGTERM and len(lines) == 1, stderr
  step = int(re.fullmatch(r'stopped by SIGTERM after step (\d+), which is saved: run the same '
                          r'command again to resume from the last checkpoint in .*',
                          lines[0]).group(1))
  assert 0 < step < 400 and checkpoint.saved_steps(preempted) == [step]
  for workdir in (preempted, tmp_path / 'unbroken'):
    finished = commands.run_py(*LONGER, f'--workdir={workdir}', lean_runtime=False)
    assert finished.returncode == 0, finished.stderr
  for a, b in zip(_final_arrays(preempted), _final_arrays(tmp_path / 'unbroken')):
    assert np.array_equal(np.asarray(a), np.asarray(b))
