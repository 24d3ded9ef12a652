"""Faults of a whole process, run as a user runs it: two runs on one workdir, a full disk,
reading a workdir whose run trains and prunes its checkpoints."""

import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
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


def test_a_full_disk_is_one_line(tmp_path):
  code = ('import errno, sys\n'
          'from colorjax.cli import main\n'
          'from colorjax.train import checkpoint\n'
          'def full(*args, **kwargs):\n'
          '  raise OSError(errno.ENOSPC, "No space left on device")\n'
          'checkpoint.Checkpoints.save = full\n'
          'main.run(sys.argv[1:])\n')
  result = subprocess.run([sys.executable, '-c', code, '--experiment=norm_ablation',
                           f'--workdir={tmp_path}', *SMALL], cwd=commands.ROOT,
                          capture_output=True, text=True, timeout=300)
  commands.assert_one_line(result.returncode, result.stderr, 'the disk is full',
                           progress_bars=True)


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
