"""What a family tells inference and the evaluator about one trained network of a run: where
its checkpoint lies, which part of the saved state prediction needs, its predictor, and the
resolution it works at.

A predictor is `predict_ab(variables, l_nhw1, keys_n) -> ab_nhw2`: L in 0..100 (N, H, W, 1)
and one PRNG key per image (used by networks that sample, ignored by the others) to ab in
Lab units at the network's output resolution (N, h, w, 2). The rest is common to every
family (color.colorized_uint8): resize ab to the photo, join its own L, fit to the gamut.
"""

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp

from colorjax.errors import UsageError

DEFAULT_TEMPERATURE = 0.38  # Zhang et al.'s annealed-mean T

Predictor = Callable[[Any, Any, Any], Any]  # (variables, L (N, H, W, 1), keys (N,)) -> ab


@dataclasses.dataclass(frozen=True)
class Options:
  """What the user chose beyond the files; a family reads what applies to it."""
  network: str | None = None        # which of a workdir's networks (e.g. a U-Net task)
  temperature: float | None = None  # annealed-mean T of the softmax head
  samples: int | None = None        # outputs per image of a network that samples (the GAN)
  seed: int = 0                     # the sampling noise
  pipeline: str = 'default'         # 'published': the authors' demo (colorjax/published.py)


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
  """One trained network of a workdir, and how it colours L.

  `saved_part()` is the part of the saved training state that prediction needs, as abstract
  arrays in nested dicts named as the state is saved ({'params': ..., 'batch_stats': ...}
  of a TrainState; the optimizer's moments are never read); `variables` turns that part
  into what `predict_ab` takes."""
  checkpoint_dir: pathlib.Path            # holds checkpoints/
  saved_part: Callable[[], Any]
  variables: Callable[[Any], Any]
  predict_ab: Predictor
  size: tuple[int, int]                   # the resolution it was trained at (h, w)
  uses: frozenset[str] = frozenset()      # Options fields it reads besides network
  stride: int = 1                         # working sizes are rounded to multiples of this
  short_side: int | None = None           # default working short side (None: min(size))
  fixed_size: bool = False                # works at `size` only (a layer's shape needs it)
  hints: bool = False                     # takes user hints: L's channels 2-4 (hints.py)

  def working_size(self, height: int, width: int, size=None) -> tuple[int, int]:
    """The resolution a (height, width) photo is colorized at: `size` as (h, w), or a short
    side (int) with the aspect ratio kept, default `short_side`; rounded to `stride`."""
    if self.fixed_size:
      return self.size
    if isinstance(size, tuple):
      h, w = size
    else:
      scale = (size or self.short_side or min(self.size)) / min(height, width)
      h, w = height * scale, width * scale
    return tuple(max(self.stride, round(x / self.stride) * self.stride) for x in (h, w))

  def predictor(self, state) -> tuple[Predictor, Any]:
    """(predict_ab, variables) of a training state in memory: what the evaluator scores."""
    return self.predict_ab, self.variables(flax.serialization.to_state_dict(state))


def network_variables(model, *sample_inputs) -> dict:
  """{'params', 'batch_stats'} of `model` as abstract arrays: the saved part of a
  TrainState that prediction needs."""
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *sample_inputs,
                                                train=False))
  return {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}


def apply_variables(saved: dict) -> dict:
  """What model.apply takes from the saved part of a TrainState."""
  return {'params': saved['params'], 'batch_stats': saved['batch_stats']}


def sample_keys(seed: int, indices, samples: int):
  """(samples, N) keys: sample s of image i depends on (seed, i, s) only."""
  per_image = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(seed), indices)
  return jax.vmap(lambda s: jax.vmap(jax.random.fold_in, (0, None))(per_image, s))(
      jnp.arange(samples))


def choose(options: Options, available: Sequence[str], default: str) -> str:
  """The network the user named (--network), or the default; one line if it is unknown."""
  name = options.network or default
  if name not in available:
    raise UsageError(f"--network={name}: this workdir holds {', '.join(available)}")
  return name


def single(options: Options):
  """For a family whose runs hold one network: --network has nothing to choose."""
  if options.network is not None:
    raise UsageError(f'--network={options.network}: this workdir holds one network; '
                     'leave --network out')
