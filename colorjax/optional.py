"""Optional packages, imported where their feature is used. A missing one costs one line of
notice on stderr, once per process, saying what happens without it and how to add it; never a
traceback. (What a feature cannot do without, a tfds dataset without tensorflow-datasets, is
a UsageError where it is asked for.)"""

import functools
import importlib
import sys

from tqdm import tqdm


@functools.cache
def load(module: str, without: str, install: str):
  """The module, or None after one line: '<install> is not installed: <without>'."""
  try:
    return importlib.import_module(module)
  except ImportError:
    tqdm.write(f'note: {install} is not installed: {without} (pip install {install})',
               file=sys.stderr)
    return None


def keep_triton_from_tensorflow():
  """Call before torch work that may import torch._dynamo (torch's optimizers do, torch.compile
  does): _dynamo imports triton where it is installed (every CUDA build of torch), and a
  process that loaded TensorFlow's LLVM first aborts when triton loads its own. Where
  TensorFlow is loaded and triton is not, torch goes on without triton (eager code, CPU or
  GPU, needs none); elsewhere nothing changes."""
  if 'tensorflow' in sys.modules and 'triton' not in sys.modules:
    sys.modules['triton'] = None  # `import triton` raises ImportError
