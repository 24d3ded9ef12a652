"""Bootstrap intervals and paired differences against closed forms."""

import numpy as np
import pytest

from colorjax.eval import metrics, report, stats


def _mean(total):
  return {'mean': total['value'] / total['items']}


def test_bootstrap_interval_of_a_mean_is_the_normal_one():
  """For 400 values the percentile bootstrap of the mean agrees with mean ± 1.96 s / sqrt(n)
  (the central limit theorem) to within a few percent of its width."""
  values = np.random.default_rng(0).normal(3.0, 2.0, 400)
  interval = stats.bootstrap(stats.seed_values(values), _mean, resamples=4000)['mean']
  half_width = 1.96 * values.std() / np.sqrt(len(values))
  assert interval['value'] == pytest.approx(values.mean(), abs=1e-12)
  assert interval['low'] == pytest.approx(values.mean() - half_width, abs=0.06 * half_width)
  assert interval['high'] == pytest.approx(values.mean() + half_width, abs=0.06 * half_width)


def test_a_ratio_is_resampled_as_a_ratio_of_sums():
  """sum x / sum y over items (1, 9) / (1, 3) is 10 / 4, not the mean of the ratios (2)."""
  per_item = {'x': np.asarray([1.0, 9.0]), 'y': np.asarray([1.0, 3.0])}
  ratio = stats.bootstrap(per_item, lambda t: {'ratio': t['x'] / t['y']}, resamples=200)
  assert ratio['ratio']['value'] == 2.5


def test_pairing_cancels_what_both_sides_share():
  """b = a + 0.1 on every item, items spread over +-20: the paired difference is exactly 0.1
  with a zero-width interval, while each side's own interval is some 100x wider."""
  a = np.random.default_rng(1).normal(0.0, 10.0, 50)
  difference = stats.paired_difference(stats.seed_values(a + 0.1), stats.seed_values(a),
                                       _mean)['mean']
  assert difference['value'] == pytest.approx(0.1)
  assert difference['high'] - difference['low'] < 1e-9
  alone = stats.bootstrap(stats.seed_values(a), _mean)['mean']
  assert alone['high'] - alone['low'] > 100 * 0.1 / 10
  assert stats.verdict(difference, 'a higher', 'b higher') == 'a higher'


def test_a_difference_that_averages_to_zero_is_not_distinguishable():
  """Items alternating +1 / -1 (mean 0): the interval straddles 0 symmetrically."""
  a = np.tile([1.0, -1.0], 20)
  difference = stats.paired_difference(stats.seed_values(a), stats.seed_values(np.zeros(40)),
                                       _mean)['mean']
  assert difference['low'] < 0 < difference['high']
  assert stats.verdict(difference, 'a', 'b') == 'not distinguishable'
  assert report.interval_cell(difference, '{:+.2f}').endswith('n.d.')


def test_paired_colorizations_use_metrics_summarize_per_image():
  """Two colorizations of the same 6 images, one exactly the truth: its PSNR is higher on
  every resample, and the difference's value is the difference of the full-data metrics."""
  rng = np.random.default_rng(2)
  rgb = rng.random((6, 8, 8, 3)).astype(np.float32)
  ab = rng.normal(0, 20, (6, 8, 8, 2)).astype(np.float32)
  mask = np.ones(6, np.float32)
  exact = metrics.image_sums(ab, ab, rgb, rgb, mask)
  off = metrics.image_sums(ab + 5, ab, np.clip(rgb + 0.05, 0, 1), rgb, mask)
  exact, off = ({k: np.asarray(v) for k, v in s.items()} for s in (exact, off))
  difference = stats.paired_difference(exact, off, metrics.summarize, resamples=300)
  whole = lambda s: metrics.summarize({k: v.sum(0) for k, v in s.items()})
  assert difference['psnr']['value'] == pytest.approx(whole(exact)['psnr'] - whole(off)['psnr'])
  assert difference['psnr']['low'] > 0 and difference['auc']['low'] > 0
  total = metrics.summarize(metrics.add_sums({}, metrics.batch_sums(ab + 5, ab, rgb, rgb,
                                                                       mask)))
  per_image = stats.bootstrap({k: np.asarray(v) for k, v in metrics.image_sums(
      ab + 5, ab, rgb, rgb, mask).items()}, metrics.summarize, resamples=100)
  assert per_image['auc']['value'] == pytest.approx(total['auc'], abs=1e-6)


def test_unequal_items_are_refused():
  with pytest.raises(ValueError, match='differ in number'):
    stats.paired_difference(stats.seed_values([1.0, 2.0]), stats.seed_values([1.0]), _mean)


def test_one_item_gives_no_interval_and_no_verdict():
  """Resampling one seed returns it every time: its zero-width 'interval' would call any
  difference distinguishable. Two items differing are resampled into a real interval."""
  one = stats.paired_difference(stats.seed_values([3.0]), stats.seed_values([1.0]),
                                stats.mean_over_items)['mean']
  assert one['value'] == 2.0 and np.isnan(one['low']) and np.isnan(one['high'])
  assert stats.verdict(one, 'a', 'b') == 'untested (no interval)'
  assert report.interval_cell(one, '{:+.1f}') == '+2.0 (no interval)'
  assert np.isnan(stats.bootstrap(stats.seed_values([3.0]), stats.mean_over_items)['mean']['low'])
  two = stats.paired_difference(stats.seed_values([3.0, 5.0]), stats.seed_values([1.0, 1.0]),
                                stats.mean_over_items)['mean']
  assert 2.0 <= two['low'] < two['high'] <= 4.0
  assert report.mean_std([4.0]) == '4' and report.mean_std([3.0, 5.0]) == '4 ± 1'
