"""Trained runs as colorizers: load any workdir's network and colour arrays with it.

`colorjax.load` (notebooks), `run.py colorize` and `run.py evaluate` are all this module. The
run's family (colorjax/families) says which checkpoint holds the network, the part of the
saved state prediction needs (its parameters and batch statistics: the optimizer's moments
are never read), the resolution it works at and its predictor; the rest is common to every
family: the network sees the image's L at its working resolution, and its ab is resized to
the image and joined with the image's own L (color.colorized_uint8), so the output keeps the
input's size, sharpness and lightness. Nothing here imports a training program.
"""

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from colorjax import color, families, mesh, xla_cpu
from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.families.spec import NetworkSpec, Options, sample_keys
from colorjax.train import checkpoint

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


def load_network(workdir: pathlib.Path, options: Options) -> tuple[NetworkSpec, object]:
  """The trained network of a workdir and the variables its predictor takes."""
  config, workdir, options = run_config(workdir, options)
  spec = families.network_spec(config, workdir, options)
  for field, who in SAMPLING_OPTIONS.items():
    if getattr(options, field) is not None and field not in spec.uses:
      raise UsageError(f'--{field} does not apply to a {config.program} run ({who} takes it)')
  saved, _ = _restore(spec)
  return spec, spec.variables(saved)


def _restore(spec: NetworkSpec, attempts: int = 5):
  """(the saved part prediction needs, its step), from the newest readable checkpoint. A run
  that is training may delete the step being read (it keeps max_to_keep); the read then
  starts again from the new newest step."""
  directory = spec.checkpoint_dir / 'checkpoints'
  target = spec.saved_part()
  for _ in range(attempts):
    steps = checkpoint.saved_steps(spec.checkpoint_dir)
    if not steps:
      raise UsageError(f'no checkpoint in {directory}: train first (python run.py '
                       '--experiment=...), or pass the --workdir of a trained run')
    saved, step = checkpoint.restore_newest_readable(directory, target, partial=True)
    if step is not None:
      return saved, step
    if checkpoint.saved_steps(spec.checkpoint_dir) == steps:
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

  def __init__(self, spec: NetworkSpec, variables, options: Options = Options(), size=None):
    self.spec, self.options, self.size = spec, options, size
    self.samples = options.samples or 1
    data_mesh = mesh.data_mesh()
    replicated, split = NamedSharding(data_mesh, P()), NamedSharding(data_mesh, P('data'))
    self._devices = data_mesh.size
    self._variables = jax.device_put(variables, replicated)
    self._predict = xla_cpu.jit(self._predict_l, in_shardings=(replicated, split, split))

  def working_size(self, height: int, width: int) -> tuple[int, int]:
    """The resolution a (height, width) photo is colorized at (NetworkSpec.working_size)."""
    return self.spec.working_size(height, width, self.size)

  def lightness_at_working_size(self, rgb_uint8) -> jax.Array:
    """L (1, h, w, 1) of an image resized to its working size: what the network sees."""
    small = images.resize_rgb(rgb_uint8, self.working_size(*rgb_uint8.shape[:2]))
    return color.lab_from_uint8(jnp.asarray(small[None]))[..., :1]

  def _predict_l(self, variables, l_nhw1, indices):
    keys = sample_keys(self.options.seed, indices, self.samples)
    return jax.vmap(lambda k: self.spec.predict_ab(variables, l_nhw1, k))(keys)

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
  family's, NetworkSpec.working_size)."""
  options = Options(network, temperature, samples, seed)
  return Colorizer(*load_network(pathlib.Path(workdir), options), options, size)
