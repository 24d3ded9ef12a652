"""Commands that run Python as if colorjax's optional packages were not installed (TensorFlow,
tensorflow-datasets, simplejpeg, tensorboardX, torch): every import finder is wrapped so it
never finds them (tfds and etils ask importlib whether TensorFlow is installed, so setting
sys.modules[name] = None is not enough). What is left is the lean runtime: jax, flax, optax,
orbax-checkpoint, numpy, scikit-image, matplotlib, tqdm, Pillow, ml-collections."""

import sys

OPTIONAL = ('tensorflow', 'tensorflow_datasets', 'simplejpeg', 'tensorboardX', 'torch')
PRELUDE = """
import sys
class Hidden:  # finds what `finder` finds, except the hidden packages
  def __init__(self, finder):
    self.finder = finder
  def __getattr__(self, name):
    return getattr(self.finder, name)
  def find_spec(self, name, *args, **kwargs):
    if name.split('.')[0] in {hidden!r}:
      return None
    return self.finder.find_spec(name, *args, **kwargs)
sys.meta_path[:] = [Hidden(f) for f in sys.meta_path]
"""


def python(script: str, hidden=OPTIONAL) -> list[str]:
  """The command that runs `script` with the `hidden` packages uninstalled (by default the
  optional ones: on the lean runtime)."""
  return [sys.executable, '-c', PRELUDE.format(hidden=tuple(hidden)) + script]


def run_py(*args: str) -> list[str]:
  """The command that runs `python run.py *args` (from the checkout) on the lean runtime."""
  return python("import runpy; sys.argv[0] = 'run.py'; "
                "runpy.run_path('run.py', run_name='__main__')") + list(args)
