"""Trained runs as colorizers: load any workdir's network and colour arrays with it.

`colorjax.load` (notebooks) and `run.py colorize` (files) are both this module. The program
that trained the run says, through its colorizer() (colorjax/program.py), which checkpoint
holds the network, the state it restores into, the resolution it works at and its
predictor; the rest is common to every family: the network sees the image's L at its working
resolution, and its ab is resized to the image and joined with the image's own L
(color.colorized_uint8), so the output keeps the input's size, sharpness and lightness.
"""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from colorjax import color, images, program, programs, train
from colorjax.errors import UsageError
from colorjax.program import Options, Trained

SAMPLING_OPTIONS = {'temperature': 'the Zhang softmax head', 'samples': 'the GAN'}


def run_config(workdir: pathlib.Path, options: Options):
  """(config, run workdir, options): a subfolder of a multi-network run (runs/unet_portrait/
  l2ab) stands for that network of its parent's run."""
  if not (workdir / 'config.json').is_file():
    if (workdir.parent / 'config.json').is_file() and options.network is None:
      return run_config(workdir.parent, dataclasses.replace(options, network=workdir.name))
    raise UsageError(f'{workdir} holds no run (no config.json): pass '
                     '--workdir=runs/<experiment>[/<variant>] of a trained run')
  config = ml_collections.ConfigDict(json.loads((workdir / 'config.json').read_text()))
  return config, workdir, options


def load_trained(workdir: pathlib.Path, options: Options) -> tuple[Trained, object]:
  """The trained network of a workdir and its restored variables."""
  config, workdir, options = run_config(workdir, options)
  program = programs.load(config.program)
  if not hasattr(program, 'colorizer'):
    raise UsageError(f'{workdir} is a {config.program} run, which trains no colorizer: pass '
                     'the workdir of a training run')
  trained = program.colorizer(config, workdir, options)
  for field, who in SAMPLING_OPTIONS.items():
    if getattr(options, field) is not None and field not in trained.uses:
      raise UsageError(f'--{field} does not apply to a {config.program} run ({who} takes it)')
  return trained, trained.variables(_restore(trained))


def _restore(trained: Trained, attempts: int = 5):
  """The newest readable checkpoint. A run that is training may delete the step being read
  (it keeps max_to_keep); the read then starts again from the new newest step."""
  directory = trained.checkpoint_dir / 'checkpoints'
  abstract = jax.eval_shape(trained.init)
  for _ in range(attempts):
    steps = train.saved_steps(trained.checkpoint_dir)
    if not steps:
      raise UsageError(f'no checkpoint in {directory}: train first (python run.py '
                       '--experiment=...), or pass the --workdir of a trained run')
    state, step = train.restore_newest_readable(directory, abstract)
    if step is not None:
      return state
    if train.saved_steps(trained.checkpoint_dir) == steps:
      raise UsageError(f'no checkpoint in {directory} can be read (damaged files): train '
                       'again after deleting that folder')
  raise UsageError(f'the checkpoints in {directory} changed under every read; try again')


@jax.jit
def colorized(rgb_uint8, ab_small):
  """An image's uint8 (H, W, 3) and its predicted ab (S, h, w, 2) -> S colorized uint8 (H, W,
  3) with the image's own L."""
  lightness = color.lab_from_uint8(rgb_uint8)[..., :1]
  return color.colorized_uint8(jnp.broadcast_to(lightness, (ab_small.shape[0],
                                                            *lightness.shape)), ab_small)


class Colorizer:
  """A trained network, ready to colour images (the public API: colorjax.load)."""

  def __init__(self, trained: Trained, variables, options: Options = Options(), size=None):
    self.trained, self.options, self.size = trained, options, size
    self.samples = options.samples or 1
    mesh = train.data_mesh()
    replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))
    self._devices = mesh.size
    self._variables = jax.device_put(variables, replicated)
    self._predict = jax.jit(self._predict_l, in_shardings=(replicated, split, split))

  def working_size(self, height: int, width: int) -> tuple[int, int]:
    """The resolution a (height, width) photo is colorized at (program.Trained)."""
    return self.trained.working_size(height, width, self.size)

  def lightness_at_working_size(self, rgb_uint8) -> jax.Array:
    """L (1, h, w, 1) of an image resized to its working size: what the network sees."""
    small = images.resize_rgb(rgb_uint8, self.working_size(*rgb_uint8.shape[:2]))
    return color.lab_from_uint8(jnp.asarray(small[None]))[..., :1]

  def _predict_l(self, variables, l_nhw1, indices):
    keys = program.sample_keys(self.options.seed, indices, self.samples)
    return jax.vmap(lambda k: self.trained.predict_ab(variables, l_nhw1, k))(keys)

  def predict_ab_batch(self, l_nhw1, indices) -> jax.Array:
    """L (N, H, W, 1) of images `indices` (their noise depends on (seed, index)) -> ab (S, N,
    h, w, 2), data-parallel over every device; N is padded to a multiple of the devices."""
    count = len(l_nhw1)
    padding = -count % self._devices
    l_nhw1 = jnp.concatenate([l_nhw1, jnp.repeat(l_nhw1[:1], padding, 0)])
    indices = np.concatenate([np.asarray(indices, np.int32), np.zeros(padding, np.int32)])
    return self._predict(self._variables, l_nhw1, indices)[:, :count]

  def predict_ab(self, lightness) -> np.ndarray:
    """L as float (N, H, W) in [0, 100] -> ab (N, h, w, 2) at the network's output size
    ((S, N, h, w, 2) when samples is given)."""
    lightness = jnp.asarray(lightness, jnp.float32)[..., None]
    ab = np.asarray(self.predict_ab_batch(lightness, np.arange(len(lightness))))
    return ab if self.options.samples else ab[0]

  def __call__(self, image) -> np.ndarray:
    """uint8 (H, W, 3) or (H, W) (or any image images.to_rgb_uint8 reads) -> the colorized
    uint8 (H, W, 3) that `run.py colorize` writes ((S, H, W, 3) when samples is given)."""
    rgb = images.to_rgb_uint8(image)
    ab = self.predict_ab_batch(self.lightness_at_working_size(rgb), [0])[:, 0]
    outputs = np.asarray(colorized(rgb, ab))
    return outputs if self.options.samples else outputs[0]


def load(workdir, network: str | None = None, temperature: float | None = None,
         samples: int | None = None, seed: int = 0, size=None) -> Colorizer:
  """A trained run's network as a Colorizer: `workdir` is runs/<experiment>[/<variant>];
  `network` picks one where a run holds several (a U-Net task, a flowers colorizer, an
  ablation scheme); `temperature` is the softmax head's annealed-mean T; `samples` and
  `seed` draw several colorizations from the GAN; `size` is the resolution photos are
  colorized at: a short side (int) or (h, w), rounded to the network's stride (default: the
  family's, program.Trained.working_size)."""
  options = Options(network, temperature, samples, seed)
  return Colorizer(*load_trained(pathlib.Path(workdir), options), options, size)
