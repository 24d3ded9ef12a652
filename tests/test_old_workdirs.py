"""A workdir written by an earlier colorjax (tests/workdirs/norm_ablation_before_subpackages:
the tiny CNN, 2 schemes x 1 seed, 20 steps, written by colorjax before its subpackage layout,
its step-20 checkpoint dropped and its step-20 parameters kept in an npz) still colorizes,
and the same command resumes it to the parameters that colorjax reached."""

import pathlib
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import skimage.data

import colorjax
from colorjax.cli import main
from colorjax.train import checkpoint

OLD = pathlib.Path(__file__).resolve().parent / 'workdirs' / 'norm_ablation_before_subpackages'
# The same command that wrote it (the field values of its config.json).
COMMAND = ['--experiment=norm_ablation', '--config.image_scale=0.1', '--config.seeds=0',
           '--config.schemes=none,unit', '--config.num_steps=20', '--config.steps_per_call=10',
           '--config.log_every=10', '--config.checkpoint_every=10']


def _params(step_dir) -> dict:
  """A checkpoint's parameters by path, read from Orbax's own metadata (no colorjax code)."""
  with ocp.StandardCheckpointer() as reader:
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                            reader.metadata(step_dir / 'default').item_metadata)
    state = reader.restore(step_dir / 'default', abstract)
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): np.asarray(v)
          for path, v in jax.tree_util.tree_flatten_with_path(state['params'])[0]}


@pytest.fixture
def old_workdir(tmp_path):
  workdir = tmp_path / 'old'
  shutil.copytree(OLD, workdir, ignore=shutil.ignore_patterns('*.npz'))
  return workdir


def test_an_old_workdir_colorizes(old_workdir):
  rgb = skimage.data.chelsea()[:48, :64]
  colorized = colorjax.load(old_workdir)(rgb)
  assert colorized.shape == rgb.shape and colorized.dtype == np.uint8


@pytest.mark.slow
def test_the_same_command_resumes_an_old_workdir_where_that_colorjax_ended(old_workdir):
  with pytest.raises(SystemExit) as exit_:
    main.run([*COMMAND, f'--workdir={old_workdir}'])
  assert exit_.value.code == 0
  assert checkpoint.saved_steps(old_workdir) == [20, 10]
  old_rows = (OLD / 'metrics.jsonl').read_text().splitlines()[:10]
  assert (old_workdir / 'metrics.jsonl').read_text().splitlines()[:10] == old_rows  # resumed
  resumed = _params(old_workdir / 'checkpoints' / '20')
  with np.load(OLD / 'params_at_step_20_by_that_colorjax.npz') as expected:
    assert sorted(expected.files) == sorted(resumed)
    for name in expected.files:  # later colorjax computes Lab by other float operations
      np.testing.assert_allclose(resumed[name], expected[name], rtol=1e-4, atol=1e-6)
