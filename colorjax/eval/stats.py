"""How sure a report can be: bootstrap intervals of a metric, and paired bootstrap intervals
of the difference between two colorizations scored on the same items (images, or seeds).

Items are resampled with replacement; a metric is recomputed from the resampled items'
additive sums (metrics.image_sums, or one value per seed), so ratios such as the ab-std
ratio and the rebalanced AuC are resampled as what they are, not as per-item averages. A
paired comparison draws the same items for both sides, so what the two share (an easy image,
a lucky seed) cancels. A difference whose 95% interval includes 0 is "not distinguishable".
"""

from typing import Callable

import numpy as np

RESAMPLES = 1000
# More resamples move a 95% interval by far less than its width; memory grows with
# resamples x items (float64 counts, and the resampled sums of every metric).
MAX_RESAMPLES = 10_000
INTERVAL = (2.5, 97.5)  # percentiles of the bootstrap: a 95% interval
# Resampling one item gives it back every time: a zero-width "interval" that would call any
# difference distinguishable. Fewer items than this get NaN bounds (no interval).
MIN_ITEMS = 2


def resample_counts(count: int, resamples: int, seed: int) -> np.ndarray:
  """(resamples, count): how often each item is drawn in each resample."""
  rng = np.random.default_rng(seed)
  return rng.multinomial(count, np.full(count, 1 / count), size=resamples).astype(np.float64)


def _weighted_totals(per_item: dict, counts: np.ndarray) -> list[dict]:
  """The sums of every resample: one {key: total} per row of `counts`."""
  totals = {k: (counts @ np.asarray(v, np.float64).reshape(len(v), -1)).reshape(
      len(counts), *np.shape(v)[1:]) for k, v in per_item.items()}
  return [{k: v[r] for k, v in totals.items()} for r in range(len(counts))]


def _count(per_item: dict) -> int:
  counts = {len(v) for v in per_item.values()}
  if len(counts) != 1 or 0 in counts:
    raise ValueError(f'per-item sums of unequal or zero length: {sorted(counts)}')
  return counts.pop()


def _interval(value: dict, draws: list[dict]) -> dict:
  """A metric undefined in every draw (SSIM of images under its 11-pixel window) gets NaN
  bounds, without numpy's warning."""
  bounds = {}
  for k in value:
    samples = np.asarray([d[k] for d in draws], np.float64)
    defined = samples[~np.isnan(samples)]
    low, high = np.percentile(defined, INTERVAL) if defined.size else (np.nan, np.nan)
    bounds[k] = {'value': float(value[k]), 'low': float(low), 'high': float(high)}
  return bounds


def bootstrap(per_item: dict, statistic: Callable[[dict], dict], resamples: int = RESAMPLES,
              seed: int = 0) -> dict:
  """{metric: {'value', 'low', 'high'}}: `statistic` of the totals over all items, and its
  95% interval over resamplings of the items. per_item: {key: (N, ...)} additive sums."""
  count = _count(per_item)
  value = statistic({k: np.sum(np.asarray(v, np.float64), axis=0) for k, v in per_item.items()})
  draws = [statistic(t) for t in _weighted_totals(per_item, resample_counts(count, resamples,
                                                                          seed))]
  return _interval(value, draws if count >= MIN_ITEMS else [])


def paired_difference(per_item_a: dict, per_item_b: dict, statistic: Callable[[dict], dict],
                      resamples: int = RESAMPLES, seed: int = 0) -> dict:
  """{metric: {'value', 'low', 'high'}} of statistic(a) - statistic(b), both computed on the
  same resampled items (item i of a and item i of b are the same image or seed)."""
  count = _count(per_item_a)
  if _count(per_item_b) != count:
    raise ValueError(f'paired items differ in number: {count} and {_count(per_item_b)}')
  counts = resample_counts(count, resamples, seed)
  total = lambda per_item: {k: np.sum(np.asarray(v, np.float64), axis=0)
                            for k, v in per_item.items()}
  difference = lambda a, b: {k: a[k] - b[k] for k in a.keys() & b.keys()}
  value = difference(statistic(total(per_item_a)), statistic(total(per_item_b)))
  draws = [difference(statistic(a), statistic(b)) for a, b in zip(
      _weighted_totals(per_item_a, counts), _weighted_totals(per_item_b, counts))]
  return _interval(value, draws if count >= MIN_ITEMS else [])


def seed_values(values) -> dict:
  """One value per seed as per-item sums, for `mean_over_items`."""
  values = np.asarray(values, np.float64)
  return {'value': values, 'items': np.ones_like(values)}


def mean_over_items(total: dict) -> dict:
  return {'mean': total['value'] / total['items']}


def distinguishable(interval: dict) -> bool:
  """A difference whose 95% interval excludes 0."""
  return interval['low'] > 0 or interval['high'] < 0


def verdict(interval: dict, higher: str, lower: str) -> str:
  """'`higher`' when the difference is surely positive, '`lower`' when surely negative,
  'untested' without an interval (one item), else 'not distinguishable'."""
  if np.isnan(interval['low']):
    return 'untested (no interval)'
  if not distinguishable(interval):
    return 'not distinguishable'
  return higher if interval['low'] > 0 else lower
