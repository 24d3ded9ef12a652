"""profile_steps: a jax.profiler trace of those steps in the workdir."""

from colorjax.configs import Loop
from tests.train import tiny_run


def test_profile_steps_write_a_trace_into_the_workdir(tmp_path):
  tiny_run.fit(tmp_path, Loop(3, checkpoint_every=3, profile_steps=(1, 1)))
  assert list((tmp_path / 'profile').rglob('*.xplane.pb'))
