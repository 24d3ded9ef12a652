"""Throughput: the meter on an injected clock, fit's rows, XLA's FLOP estimate and peaks."""

import functools

import jax
import jax.numpy as jnp
import pytest

from colorjax.configs import Loop
from colorjax.train import loop, throughput
from tests.train import tiny_run


class _Clock:
  """A clock that moves only when told: throughput figures without sleeping."""

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_the_meter_counts_steps_over_the_clock_without_the_excluded_time():
  clock = _Clock()
  meter = throughput.Meter(images_per_step=8, clock=clock)
  meter.called(1)  # the first call's return starts the clock: its compile is not counted
  clock.now += 0.15
  meter.called(3)
  with meter.excluded():
    clock.now += 0.3  # an evaluation
  first = meter.read(flops_per_step=1e9)
  assert first == pytest.approx({'steps_per_second': 4 / 0.15, 'step_time_ms': 37.5,
                                 'images_per_second': 8 * 4 / 0.15,
                                 'tflops_per_second': 1e9 * 4 / 0.15 / 1e12})
  clock.now += 0.5
  meter.called(5)
  assert meter.read() == pytest.approx({'steps_per_second': 10.0, 'step_time_ms': 100.0,
                                        'images_per_second': 80.0})


def test_fit_logs_the_meters_figures_with_every_row(tmp_path, monkeypatch):
  """Steps of 50 ms and an evaluation of 0.3 s after step 4, on an injected clock: every
  row of the second interval carries 20 steps/s, 50 ms, 8 x 20 images/s and, with 1e9
  FLOPs a step, 0.02 TFLOP/s."""
  clock = _Clock()
  monkeypatch.setattr(throughput, 'Meter', functools.partial(throughput.Meter, clock=clock))

  def advance(state, k):
    clock.now += 0.05
    return state, {'loss': jnp.zeros(())}

  def slow_evaluation(state):
    clock.now += 0.3
    return {'score': 0.0}, None

  loop.fit(tmp_path, tiny_run.fresh_state(), advance, Loop(8, checkpoint_every=8, log_every=4,
                                               eval_every=4),
           images_per_step=8, flops_per_step=1e9, eval_fn=slow_evaluation)
  rows = tiny_run.rows(tmp_path / 'metrics.jsonl')
  for row in rows[4:]:
    assert row['steps_per_second'] == pytest.approx(20.0)
    assert row['step_time_ms'] == pytest.approx(50.0)
    assert row['images_per_second'] == pytest.approx(160.0)
    assert row['tflops_per_second'] == pytest.approx(0.02)


def test_step_flops_of_a_matmul_is_two_n_cubed_and_peaks_come_from_the_table():
  x = jnp.ones((32, 32))
  assert throughput.step_flops(jax.jit(lambda a, b: a @ b), x, x) == pytest.approx(2 * 32 ** 3)
  assert throughput.peak_tflops('NVIDIA H100 80GB HBM3') == 989.0
  assert throughput.peak_tflops('NVIDIA A100-SXM4-40GB') == 312.0
  assert throughput.peak_tflops('cpu') is None
  assert throughput.peak_tflops('cpu', configured=2.5) == 2.5
