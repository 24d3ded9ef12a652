"""The Frechet distance of FID (Heusel et al. 2017) between two sets of features, as
pytorch-fid computes it, in float64 numpy.

Features are reduced batch by batch to additive sums (FeatureStats), so a split's features
are never held at once, and the sums of several processes add up. The distance takes the
trace of (S1 S2)^(1/2) from symmetric eigen-decompositions, real by construction, where
pytorch-fid's scipy.linalg.sqrtm of the non-symmetric S1 S2 can turn complex.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(eq=False)  # arrays have no single truth value
class FeatureStats:
  """Count, sum and sum of outer products of features, in float64. Empty until the first
  features, which set the dimension."""
  count: int = 0
  total: np.ndarray | None = None        # (D,)
  outer_total: np.ndarray | None = None  # (D, D)

  def add(self, features) -> 'FeatureStats':
    """Accumulates (N, D) features; returns self."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2:
      raise ValueError(f'features of shape {features.shape}, expected (N, D)')
    merged = self + FeatureStats(len(features), features.sum(axis=0), features.T @ features)
    self.count, self.total, self.outer_total = merged.count, merged.total, merged.outer_total
    return self

  def __add__(self, other: 'FeatureStats') -> 'FeatureStats':
    """The statistics of both sets of features (of two processes, say)."""
    if self.total is None or other.total is None:
      return dataclasses.replace(other if self.total is None else self)
    if self.total.shape != other.total.shape:
      raise ValueError(f'features of dimension {len(self.total)} and {len(other.total)}')
    return FeatureStats(self.count + other.count, self.total + other.total,
                        self.outer_total + other.outer_total)

  def mean(self) -> np.ndarray:
    if not self.count:
      raise ValueError('no features')
    return self.total / self.count

  def covariance(self) -> np.ndarray:
    """Sample covariance (N - 1 normalization), as np.cov(rowvar=False) in pytorch-fid."""
    if self.count < 2:
      raise ValueError(f'a covariance needs 2 features or more, not {self.count}')
    mean = self.mean()
    return (self.outer_total - self.count * np.outer(mean, mean)) / (self.count - 1)


def _symmetric_sqrt(matrix):
  """Square root of a symmetric positive semi-definite matrix; rounding's small negative
  eigenvalues are clipped at 0."""
  values, vectors = np.linalg.eigh(matrix)
  return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
  """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) of two Gaussians. S1 S2 has
  the eigenvalues of A S2 A with A = S1^(1/2), which is symmetric positive semi-definite, so
  tr((S1 S2)^(1/2)) is the sum of the square roots of its eigenvalues."""
  mu1, cov1, mu2, cov2 = (np.asarray(x, np.float64) for x in (mu1, cov1, mu2, cov2))
  root = _symmetric_sqrt(cov1)
  product = root @ cov2 @ root
  eigenvalues = np.linalg.eigvalsh(0.5 * (product + product.T))
  trace_sqrt = np.sum(np.sqrt(np.maximum(eigenvalues, 0.0)))
  difference = mu1 - mu2
  return float(difference @ difference + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)


def fid(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
  """The Frechet distance between the Gaussians fitted to two sets of features."""
  return frechet_distance(stats_a.mean(), stats_a.covariance(), stats_b.mean(),
                          stats_b.covariance())
