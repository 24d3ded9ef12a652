"""The input pipeline: determinism, resume, process shares, eval padding, prefetch."""

import time

import numpy as np
import pytest

from colorjax import configs, mesh
from colorjax.data import images, pipeline, sources
from colorjax.errors import UsageError


def _config(**overrides):
  return configs.data_config(**{'crop': 32, 'batch_size': 8, 'eval_batch_size': 4,
                                **overrides})


def _first_batches(config, count, start_step=0):
  iterator = pipeline.train_batches(sources.load_source(config, 'train'), config, start_step)
  return [next(iterator)['rgb'] for _ in range(count)]


def test_same_seed_same_batches_other_seed_other_batches():
  config = _config()
  first, again = _first_batches(config, 3), _first_batches(config, 3)
  assert all(np.array_equal(a, b) for a, b in zip(first, again))
  other = _first_batches(_config(seed=1), 3)
  assert not np.array_equal(first[0], other[0])


def test_resume_from_step_k_reproduces_batches_k_and_k_plus_1():
  config = _config()
  unbroken = _first_batches(config, 7)  # several epochs of the 7 sample photos
  resumed = _first_batches(config, 2, start_step=5)
  assert np.array_equal(resumed[0], unbroken[5]) and np.array_equal(resumed[1], unbroken[6])


def test_every_epoch_is_a_permutation_and_epochs_differ():
  config = _config(batch_size=7)  # one batch = one epoch of the 7 sample photos
  source = sources.load_source(config, 'train')
  iterator = pipeline.train_batches(source, config)
  epochs = [next(iterator)['label'] for _ in range(3)]
  assert all(sorted(e) == list(range(7)) for e in epochs)
  assert len({tuple(e) for e in epochs}) > 1


def test_resuming_far_in_costs_about_what_starting_costs():
  """Resume is index maths: batch 2,000,000 is as quick to reach as batch 0."""
  source = sources.load_source(_config(), 'train')

  def seconds_to_first_batches(start_step):
    start = time.perf_counter()
    iterator = pipeline.train_batches(source, _config(), start_step)
    for _ in range(3):
      next(iterator)
    return time.perf_counter() - start

  seconds_to_first_batches(0)  # warm-up: thread pool, imports
  at_zero = min(seconds_to_first_batches(0) for _ in range(3))
  far = min(seconds_to_first_batches(2_000_000) for _ in range(3))
  assert far < 3 * at_zero


def test_a_process_reads_only_the_records_of_its_rows(tmp_path):
  """Process 1 of 2 reads the records of rows 4..7 of batch 3 and of the batches it decodes
  ahead, none of process 0's (one epoch: distinct records for distinct rows)."""
  ahead = range(3, 3 + pipeline.AHEAD + 1)
  count = 8 * (ahead.stop + 1)
  photos = np.random.default_rng(0).integers(0, 256, (count, 8, 8, 3), np.uint8)
  np.savez(tmp_path / 'p.npz', train_images=photos, test_images=photos[:1])
  config = _config(source=f'npz:{tmp_path / "p.npz"}', crop=8)
  source = sources.load_source(config, 'train')
  read, reads = source.read, []
  source.read = lambda index, short_side: reads.append(index) or read(index, short_side)
  iterator = pipeline.train_batches(source, config, 3, 1, 2)
  next(iterator)
  iterator.close()

  def records(first_row, steps):
    return {pipeline._record(config.seed, k * 8 + j, count) for k in steps
            for j in range(first_row, first_row + 4)}

  assert records(4, [3]) <= set(reads) <= records(4, ahead)
  assert not set(reads) & records(0, ahead)


def _process_batches(config, process_count, count, start_step=0):
  """Batches 0..count-1 of each of `process_count` (faked) processes."""
  source = sources.load_source(config, 'train')
  iterators = [pipeline.train_batches(source, config, start_step, index, process_count)
               for index in range(process_count)]
  return [[next(it) for _ in range(count)] for it in iterators]


@pytest.mark.parametrize('process_count', [2, 4])
def test_processes_hold_disjoint_shares_of_the_same_global_batches(process_count):
  config = _config()
  (alone,) = _process_batches(config, 1, 3)
  shares = _process_batches(config, process_count, 3)
  for k in range(3):
    for key in ('rgb', 'label'):
      joined = np.concatenate([shares[p][k][key] for p in range(process_count)])
      np.testing.assert_array_equal(joined, alone[k][key])  # in to_global's row order
  # ... and after a resume, in every process.
  resumed = _process_batches(config, process_count, 1, start_step=2)
  for p in range(process_count):
    np.testing.assert_array_equal(resumed[p][0]['rgb'], shares[p][2]['rgb'])


def test_per_process_batch_is_the_global_batch_over_the_processes():
  source = sources.load_source(_config(), 'train')
  assert next(pipeline.train_batches(source, _config(), 0, 1, 2))['rgb'].shape[0] == 4
  with pytest.raises(UsageError, match='must divide evenly over 3 processes'):
    pipeline.train_batches(source, _config(), 0, 0, 3)


def test_eval_shares_count_every_example_once_in_single_process_order():
  config = _config(eval_batch_size=4)
  source = sources.load_source(config, 'eval')
  num_batches = pipeline.num_eval_batches(len(images.SAMPLE_PHOTOS), 4)  # 7 photos: 2 batches
  alone = list(pipeline.eval_batches(source, config, num_batches, 0, 1))
  shares = [list(pipeline.eval_batches(source, config, num_batches, index, 2)) for index in (0, 1)]
  assert [len(s) for s in shares] == [num_batches] * 2  # the same count in every process
  for k in range(num_batches):
    for key in ('rgb', 'label', 'mask'):
      np.testing.assert_array_equal(
          np.concatenate([shares[0][k][key], shares[1][k][key]]), alone[k][key])
  seen = [int(label) for b in alone for label, m in zip(b['label'], b['mask']) if m]
  assert sorted(seen) == list(range(len(images.SAMPLE_PHOTOS)))


def test_prefetch_to_device_keeps_order():
  host = [{'rgb': np.full((4, 2, 2, 3), i, np.uint8)} for i in range(5)]
  out = [int(b['rgb'][0, 0, 0, 0])
         for b in pipeline.prefetch_to_device(iter(host), mesh.data_mesh())]
  assert out == list(range(5))


def test_train_short_side_shows_the_scene_at_the_eval_scale(tmp_path):
  """A 64x128 image of two halves (red | blue). Resized to short side 16 first (16x32), a
  16x16 training crop shows one colour only at 2 of its 17 offsets; from the original, at 97
  of 113 (a patch of one half, 4x closer than the eval centre crop sees it)."""
  image = np.zeros((64, 128, 3), np.uint8)
  image[:, :64] = (255, 0, 0)
  image[:, 64:] = (0, 0, 255)
  np.savez(tmp_path / 'halves.npz', train_images=image[None], test_images=image[None])

  def one_color_share(short_side):
    config = _config(source=f'npz:{tmp_path / "halves.npz"}', crop=16, batch_size=64,
                     train_short_side=short_side)
    crops = next(pipeline.train_batches(sources.load_source(config, 'train'), config))['rgb']
    red_share = np.mean(crops[..., 0] > 127, axis=(1, 2))
    return np.mean((red_share == 0) | (red_share == 1))

  assert one_color_share(16) < 0.3 and one_color_share(0) > 0.7
  with pytest.raises(UsageError, match='train_short_side=8 must be 0'):
    sources.check(_config(crop=16, train_short_side=8), 1)
