"""The contract between the library and a program: what a program provides, and the types
both sides share.

A program (colorjax/programs/<name>.py, chosen by `config.program`) is the code behind one
or more experiments. It provides:

  main(config, workdir) -> None
      Train (resumably, through train.fit), evaluate with evaluator.evaluate_colorizers and
      write report.md, figures and metrics_eval.json into `workdir`. Check the config before
      anything trains: a mistake is a UsageError (one line, exit status 2).

  colorizer(config, workdir, options: Options) -> Trained        (programs that colorize)
      One trained network of a finished run: where its checkpoint lies, the state it restores
      into, and its predictor. `run.py colorize`, colorjax.load and the program's own report
      use this one function, so the figures a report prints come from the code that
      colorizes a user's photo.

A predictor is `predict_ab(variables, l_nhw1, keys_n) -> ab_nhw2`: L in 0..100 (N, H, W, 1)
and one PRNG key per image (used by networks that sample, ignored by the others) to ab in
Lab units at the network's output resolution (N, h, w, 2). The library does the rest once
(color.colorized_uint8): resize ab to the photo, join its own L, fit to the sRGB gamut.
"""

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from colorjax.errors import UsageError

DEFAULT_TEMPERATURE = 0.38  # Zhang et al.'s annealed-mean T

Predictor = Callable[[Any, Any, Any], Any]  # (variables, L (N, H, W, 1), keys (N,)) -> ab


@dataclasses.dataclass(frozen=True)
class Options:
  """What the user chose beyond the files; a program's colorizer reads what applies to it."""
  network: str | None = None        # which of a workdir's networks (e.g. a U-Net task)
  temperature: float | None = None  # annealed-mean T of the softmax head
  samples: int | None = None        # outputs per image of a network that samples (the GAN)
  seed: int = 0                     # the sampling noise


@dataclasses.dataclass(frozen=True)
class Trained:
  """One trained network of a workdir, and how it colours L."""
  checkpoint_dir: pathlib.Path            # holds checkpoints/
  init: Callable[[], Any]                 # () -> a fresh training state, shaped as the saved one
  variables: Callable[[Any], Any]         # training state -> what predict_ab takes
  predict_ab: Predictor
  size: tuple[int, int]                   # the resolution it was trained at (h, w)
  uses: frozenset[str] = frozenset()      # Options fields it reads besides network
  stride: int = 1                         # working sizes are rounded to multiples of this
  short_side: int | None = None           # default working short side (None: min(size))
  fixed_size: bool = False                # works at `size` only (a layer's shape needs it)

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
    """(predict_ab, variables) of a training state: what the evaluator scores."""
    return self.predict_ab, self.variables(state)


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
  """For a program whose runs hold one network: --network has nothing to choose."""
  if options.network is not None:
    raise UsageError(f'--network={options.network}: this workdir holds one network; '
                     'leave --network out')
