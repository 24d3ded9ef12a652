"""Trained runs as colorizers: load any workdir's network and colour arrays with it.

`colorjax.load` (notebooks), `run.py colorize` and `run.py evaluate` are all this module. The
run's family (colorjax/families) says which checkpoint holds the network, the part of the
saved state prediction needs (its parameters and batch statistics: the optimizer's moments
are never read), the resolution it works at and its predictor; the rest is common to every
family: the network sees the image's L at its working resolution, and its ab is resized to
the image and joined with the image's own L (color.colorized_uint8), so the output keeps the
input's size, sharpness and lightness. Nothing here imports a training program.
"""

import concurrent.futures
import dataclasses
import numbers
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import PIL.Image
from jax.sharding import NamedSharding, PartitionSpec as P

from colorjax import color, families, hints as user_hints, mesh, published, xla_cpu
from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.families.spec import DEFAULT_TEMPERATURE, NetworkSpec, Options, sample_keys
from colorjax.train import checkpoint, workdirs

SAMPLING_OPTIONS = {'temperature': 'the Zhang softmax head', 'samples': 'the GAN'}
PIPELINES = ('default', 'published')


def run_config(workdir: pathlib.Path, options: Options):
  """(config, run workdir, options): a subfolder of a multi-network run (runs/unet_portrait/
  l2ab) stands for that network of its parent's run."""
  if not (workdir / 'config.json').is_file():
    if (workdir.parent / 'config.json').is_file() and options.network is None:
      return run_config(workdir.parent, dataclasses.replace(options, network=workdir.name))
    raise UsageError(f'{workdir} holds no run (no config.json): pass '
                     '--workdir=runs/<experiment>[/<variant>] of a trained run')
  config = ml_collections.ConfigDict(workdirs.read_config(workdir))
  return config, workdir, options


def load_network(workdir: pathlib.Path, options: Options) -> tuple[NetworkSpec, object]:
  """The trained network of a workdir and the variables its predictor takes."""
  config, workdir, options = run_config(workdir, options)
  spec = families.network_spec(config, workdir, options)
  for field, who in SAMPLING_OPTIONS.items():
    if getattr(options, field) is not None and field not in spec.uses:
      raise UsageError(f'--{field} does not apply to a {config.program} run ({who} takes it)')
  if options.pipeline == 'published' and 'pipeline' not in spec.uses:
    raise UsageError(f'--pipeline=published does not apply to a {config.program} run (it is '
                     "the demo of Zhang et al.'s networks); leave --pipeline out")
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pool.submit(xla_cpu.options)  # its probes compile while the checkpoint is read
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
def _lightness(rgb_uint8):
  return color.lab_from_uint8(rgb_uint8)[..., :1]


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
    if options.pipeline == 'published' and size is not None:
      raise UsageError('--size does not apply to --pipeline=published: the demo squashes every '
                       'photo to 256x256; leave --size out')
    self.spec, self.options, self.size = spec, options, size
    self.published = options.pipeline == 'published'
    self.samples = options.samples or 1
    data_mesh = mesh.data_mesh()
    replicated, split = NamedSharding(data_mesh, P()), NamedSharding(data_mesh, P('data'))
    self._devices = data_mesh.size
    self._variables = jax.device_put(variables, replicated)
    self._predict = xla_cpu.jit(self._predict_l, in_shardings=(replicated, split, split))

  def working_size(self, height: int, width: int) -> tuple[int, int]:
    """The resolution a (height, width) photo is colorized at (NetworkSpec.working_size);
    images.TooLarge over the budget."""
    if self.published:
      return published.SIZE
    size = self.spec.working_size(height, width, self.size)
    images.check_working_side(size, (height, width))
    return size

  def lightness_at_working_size(self, rgb_uint8) -> jax.Array:
    """L (1, h, w, 1) of an image resized to its working size: what the network sees."""
    resize = published.resize_rgb if self.published else images.resize_rgb
    return _lightness(resize(rgb_uint8, self.working_size(*rgb_uint8.shape[:2]))[None])

  def colorized(self, rgb_uint8, ab_small) -> jax.Array:
    """An image's uint8 (H, W, 3) and its predicted ab (S, h, w, 2) -> S colorized uint8
    (H, W, 3), by the chosen pipeline."""
    return (published.colorized if self.published else colorized)(rgb_uint8, ab_small)

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
    """L (N, H, W), or one image's (H, W), in [0, 100] -> ab (N, h, w, 2), or (h, w, 2), at
    the network's output size (a leading S axis when samples is given)."""
    lightness = self._checked_lightness(lightness)
    batch = lightness if lightness.ndim == 3 else lightness[None]
    ab = np.asarray(self.predict_ab_batch(jnp.asarray(batch)[..., None],
                                          np.arange(len(batch))))
    ab = ab if lightness.ndim == 3 else ab[:, 0]
    return ab if self.options.samples else ab[0]

  def _checked_lightness(self, lightness) -> np.ndarray:
    """L as float32, or a TypeError or ValueError naming what predict_ab takes."""
    lightness = np.asarray(lightness)
    if lightness.dtype == bool or not np.issubdtype(lightness.dtype, np.number) \
        or np.issubdtype(lightness.dtype, np.complexfloating):
      raise TypeError(f'predict_ab takes L as real numbers in [0, 100], not {lightness.dtype}')
    if lightness.ndim not in (2, 3) or not lightness.size:
      raise ValueError(f'predict_ab takes L of shape (N, H, W) or (H, W), not '
                       f'{lightness.shape}: for an image, call the colorizer itself')
    if not (np.isfinite(lightness).all() and 0 <= lightness.min() and lightness.max() <= 100):
      raise ValueError(f'predict_ab takes L in [0, 100] (Lab lightness; found '
                       f'{lightness.min():.3g}..{lightness.max():.3g})')
    size = lightness.shape[-2:]
    if self.spec.fixed_size and size != self.spec.size:
      raise ValueError(f'this network takes L of {self.spec.size[0]}x{self.spec.size[1]} '
                       f'pixels only, not {size[0]}x{size[1]}')
    images.check_working_side(size, size)
    return lightness.astype(np.float32)

  def network_input(self, rgb_uint8, hints=()) -> jax.Array:
    """What the network sees of an image: its L at the working size (1, h, w, 1), and for a
    network that takes hints, the image's parsed `hints` (colorjax/hints.py) as 3 more
    channels, ab and mask (none: zeros, automatic colorization)."""
    lightness = self.lightness_at_working_size(rgb_uint8)
    if not self.spec.hints:
      if hints:
        raise ValueError('hints apply to a network that takes them (an imported siggraph17 '
                         'run), not this one')
      return lightness
    planes = user_hints.planes(hints, rgb_uint8.shape[:2], lightness.shape[1:3])
    return jnp.concatenate([lightness, jnp.asarray(planes)[None]], -1)

  def __call__(self, image, hints=None) -> np.ndarray:
    """An image as `image_rgb` takes it -> the colorized uint8 (H, W, 3) that `run.py
    colorize` writes ((S, H, W, 3) when samples is given). `hints`: the user's colours for
    a siggraph17 run, a list of {"y", "x", "rgb" or "ab", "size"} (colorjax/hints.py)."""
    rgb = image_rgb(image)
    parsed = () if hints is None else user_hints.parse(hints)
    ab = self.predict_ab_batch(self.network_input(rgb, parsed), [0])[:, 0]
    outputs = np.asarray(self.colorized(rgb, ab))
    return outputs if self.options.samples else outputs[0]


ACCEPTED = (f'an image array ({images.CONVENTIONS}; gray, RGB or RGBA), a PIL image, or an '
            'image file: its path, its bytes or a binary file object')


def image_rgb(image) -> np.ndarray:
  """What a Colorizer takes -> uint8 (H, W, 3): an array (images.to_rgb_uint8), a PIL image
  (images.pil_rgb), or an image file as `run.py colorize` reads it. Encoded bytes are taken,
  not refused: they are what a path is read into. Anything else is a TypeError naming these."""
  if isinstance(image, (str, os.PathLike, bytes, bytearray)) or hasattr(image, 'read'):
    return images.read_rgb(image)
  if isinstance(image, PIL.Image.Image):
    return images.pil_rgb(image)
  array = np.asarray(image)
  if array.dtype.kind in 'SUOV':  # text, objects, records: no pixels to read
    raise TypeError(f'a colorizer takes {ACCEPTED}; not a {type(image).__name__} of '
                    f'{array.dtype}')
  return images.to_rgb_uint8(array)


def cache_compiled_programs():
  """For run.py colorize and evaluate: keep XLA's compiled programs on disk, so that a later
  run at a working size seen before does not compile again (about 1 s of a one-photo run on 2
  cores). It sets a process-wide JAX option, so colorjax.load leaves it to the notebook; a
  folder the user chose (JAX_COMPILATION_CACHE_DIR) is kept."""
  if jax.config.jax_compilation_cache_dir is None:
    home = pathlib.Path(os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache')
    jax.config.update('jax_compilation_cache_dir', str(home / 'colorjax' / 'xla'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)


def load(workdir, network: str | None = None, temperature: float | None = None,
         samples: int | None = None, seed: int = 0, size=None,
         pipeline: str = 'default') -> Colorizer:
  """A trained run's network as a Colorizer: `workdir` is runs/<experiment>[/<variant>];
  `network` picks one where a run holds several (a U-Net task, a flowers colorizer, an
  ablation scheme); `temperature` is the softmax head's annealed-mean T; `samples` and
  `seed` draw several colorizations from the GAN; `size` is the resolution photos are
  colorized at: a short side (int) or (h, w), rounded to the network's stride (default: the
  family's, NetworkSpec.working_size); `pipeline` 'published' is the authors' demo
  (colorjax/published.py) for Zhang et al.'s networks. Each argument is checked here, as
  run.py colorize checks its flags: a TypeError or ValueError names what it takes."""
  options = Options(network, temperature, samples, seed, pipeline)
  _check_options(options, size)
  size = images.check_working_size(size)
  return Colorizer(*load_network(pathlib.Path(workdir), options), options, size)


def _check_options(options: Options, size):
  """The mistakes a notebook can make in load's options, before the network is read."""
  _check_type('network', options.network, str, 'a name (str) or None', optional=True)
  _check_type('temperature', options.temperature, numbers.Real, 'a number', optional=True)
  _check_type('samples', options.samples, numbers.Integral, 'an int', optional=True)
  _check_type('seed', options.seed, numbers.Integral, 'an int')
  if options.temperature is not None and not 0 < options.temperature < float('inf'):
    raise ValueError(f'temperature={options.temperature!r}: the annealed-mean T must be '
                     f'finite and > 0 (default {DEFAULT_TEMPERATURE}; 1 for eccv16)')
  if options.pipeline not in PIPELINES:
    raise ValueError(f"pipeline={options.pipeline!r}: pass one of {', '.join(PIPELINES)}")
  if options.samples is not None and options.samples < 1:
    raise ValueError(f'samples={options.samples!r} must be at least 1')
  if options.pipeline == 'published' and size is not None:
    raise ValueError(f"size={size!r} does not apply to pipeline='published': the demo squashes "
                     'every photo to 256x256; leave size out')


def _check_type(name, value, kind, expected, optional=False):
  if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
    return
  raise TypeError(f'{name}={value!r}: pass {expected}')
