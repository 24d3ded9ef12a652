"""Quantized ab space of Colorful Image Colorization (Zhang et al. 2016).

The bin set. Zhang et al. released 313 step-10 ab grid cells (pts_in_hull.npy); how they
chose them is not stated beyond "in gamut". This codebase derives its set from the sRGB
gamut, which needs no data: every 8-bit sRGB colour (all 256^3) is converted to Lab
(color.py), and a grid cell is a bin when at least one colour's nearest grid centre is that
cell. So every sRGB colour's nearest bin is in the set by construction (the tests check it
on random colours against scikit-image's Lab). This rule gives 261 bins (the released file is not
on this machine, so which cells the two sets do not share is not measured). A user's own
set (a .npy of Q x 2 ab centres, e.g. the released pts_in_hull.npy, or an imported network's
bins.npy) replaces the derived one.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import color
from colorjax.errors import UsageError

GRID_STEP = 10.0


@functools.cache
def gamut_bins(step: float = GRID_STEP) -> np.ndarray:
  """(Q, 2) float32 ab centres of the grid cells that some 8-bit sRGB colour falls into,
  sorted by (a, b)."""
  half = int(np.ceil(130 / step))  # |a|, |b| < 130 for every sRGB colour
  levels = jnp.arange(256, dtype=jnp.float32) / 255.0

  @jax.jit
  def occupancy(red):  # the cells hit by 8 slabs of the cube (8 x 256 x 256 colours)
    rgb = jnp.stack(jnp.broadcast_arrays(red[:, None, None], levels[None, :, None],
                                         levels[None, None, :]), axis=-1)
    cell = jnp.round(color.rgb_to_lab(rgb)[..., 1:] / step).astype(jnp.int32) + half
    flat = (cell[..., 0] * (2 * half + 1) + cell[..., 1]).ravel()
    return jnp.zeros((2 * half + 1) ** 2, bool).at[flat].set(True)

  hit = np.zeros((2 * half + 1) ** 2, bool)
  for red in np.split(np.asarray(levels), 32):
    hit |= np.asarray(occupancy(red))
  a, b = np.divmod(np.flatnonzero(hit), 2 * half + 1)
  return (np.stack([a, b], axis=-1) - half).astype(np.float32) * step


GRID_HALF = int(np.ceil(130 / GRID_STEP))  # |a|, |b| < 130 for every sRGB colour
NUM_GRID_CELLS = (2 * GRID_HALF + 1) ** 2


def grid_cell(ab):
  """Index of the step-10 grid cell of each ab (..., 2): for an in-gamut colour, its bin of
  the gamut set, found without a distance to every bin."""
  cell = jnp.clip(jnp.round(ab / GRID_STEP).astype(jnp.int32) + GRID_HALF, 0, 2 * GRID_HALF)
  return cell[..., 0] * (2 * GRID_HALF + 1) + cell[..., 1]


def run_bins(path: str, workdir) -> np.ndarray:
  """A run's bins (config.bins): a path relative to the workdir (an imported network's
  bins.npy) is found there; any other path as given; '' is the sRGB gamut set."""
  if path and (pathlib.Path(workdir) / path).is_file():
    return load_bins(str(pathlib.Path(workdir) / path))
  return load_bins(path)


def load_bins(path: str = '') -> np.ndarray:
  """The gamut set, or a user's Q x 2 .npy of ab centres."""
  if not path:
    return gamut_bins()
  file = pathlib.Path(path).expanduser()
  if not file.is_file():
    raise UsageError(f"bin file '{path}' not found: pass --config.bins=PATH to a .npy of Q x 2 "
                     "ab centres, or '' for the sRGB gamut set")
  bins = np.load(file)
  if bins.ndim != 2 or bins.shape[1] != 2 or len(bins) < 2:
    raise UsageError(f'{path}: bins must be a Q x 2 array of ab centres, got {bins.shape}')
  return bins.astype(np.float32)


def _squared_distances(ab, bins):
  """(..., Q) squared distances between ab (..., 2) and every bin centre."""
  bins = jnp.asarray(bins, ab.dtype)
  return (jnp.sum(ab ** 2, -1, keepdims=True) - 2 * ab @ bins.T
          + jnp.sum(bins ** 2, -1))


def nearest_bin(ab, bins):
  """Index of the nearest bin for each ab (..., 2)."""
  return jnp.argmin(_squared_distances(ab, bins), axis=-1)


def soft_encode(ab, bins, neighbours: int = 10, sigma: float = 5.0):
  """(..., Q) target distribution: Gaussian weights (sigma) on the `neighbours` nearest bins,
  zero elsewhere, summing to 1 (Zhang et al.; 10 neighbours, as the authors confirmed).

  The nearest bins are taken one at a time (argmin, then masked), ties by bin order:
  lax.top_k is a full sort on XLA:CPU, 50 ms of the Zhang et al. step at 64x64, batch 8."""
  d2 = jnp.maximum(_squared_distances(ab, bins), 0.0)
  chosen, nearest_d2 = [], []
  for _ in range(neighbours):
    index = jnp.argmin(d2, axis=-1)
    one_hot = jax.nn.one_hot(index, d2.shape[-1], dtype=bool)
    chosen.append(one_hot)
    nearest_d2.append(jnp.min(d2, axis=-1))
    d2 = jnp.where(one_hot, jnp.inf, d2)
  # Measured from the nearest bin, so that far out-of-gamut ab cannot underflow to 0 / 0.
  gaussian = jnp.exp((nearest_d2[0][..., None] - jnp.stack(nearest_d2, -1)) / (2 * sigma ** 2))
  weights = gaussian / jnp.sum(gaussian, axis=-1, keepdims=True)
  return sum(jnp.where(one_hot, weights[..., i:i + 1], 0.0) for i, one_hot in enumerate(chosen))


def empirical_prior(counts, bins, sigma: float = 5.0):
  """Bin frequencies (hard counts over training pixels) smoothed by a Gaussian of `sigma` in
  ab space, then renormalized over the bins: Zhang et al.'s p~."""
  counts = np.asarray(counts, np.float64)
  bins = np.asarray(bins, np.float64)
  d2 = np.sum((bins[:, None] - bins[None]) ** 2, -1)
  smoothed = np.exp(-d2 / (2 * sigma ** 2)) @ (counts / counts.sum())
  return smoothed / smoothed.sum()


def rebalancing_weights(prior, mix: float = 0.5):
  """w proportional to ((1 - mix) p~ + mix / Q)^-1, scaled so that E_p~[w] = 1."""
  prior = np.asarray(prior, np.float64)
  weights = 1.0 / ((1.0 - mix) * prior + mix / len(prior))
  return weights / np.sum(prior * weights)


def annealed_mean(logits, bins, temperature: float = 0.38):
  """Decode (..., Q) logits to ab (..., 2): the mean of softmax(logits / T) over the bin
  centres. T = 1 is the mean of the predicted distribution, T -> 0 its mode."""
  probabilities = jax.nn.softmax(logits / temperature, axis=-1)
  return probabilities @ jnp.asarray(bins, probabilities.dtype)


def count_bins(ab, bins):
  """(Q,) how many of the ab values (..., 2) fall nearest to each bin: the prior's data."""
  return jnp.bincount(nearest_bin(ab, bins).ravel(), length=len(bins))
