"""How the benchmark times: the fastest of N calls, after one that compiles and fills caches
(its slow outliers are other work on a shared machine)."""

import time


def best_seconds(run, repeats: int) -> float:
  """The fastest of `repeats` timed calls of run() (the caller warms it up first): the
  benchmark's figures, whose slow outliers are other work on a shared machine."""
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
  return best


def warm_best_seconds(run, repeats: int) -> float:
  """best_seconds of run() after one untimed call (it compiles, fills caches)."""
  run()
  return best_seconds(run, repeats)
