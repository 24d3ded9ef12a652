"""Commands that run Python as if TensorFlow were not installed: every import finder is
wrapped so it never finds `tensorflow` (tfds and etils ask importlib whether it is, so
setting sys.modules['tensorflow'] = None is not enough)."""

import sys

PRELUDE = """
import sys
class Hidden:  # finds what `finder` finds, except tensorflow
  def __init__(self, finder):
    self.finder = finder
  def __getattr__(self, name):
    return getattr(self.finder, name)
  def find_spec(self, name, *args, **kwargs):
    if name.split('.')[0] == 'tensorflow':
      return None
    return self.finder.find_spec(name, *args, **kwargs)
sys.meta_path[:] = [Hidden(f) for f in sys.meta_path]
"""


def python(script: str) -> list[str]:
  """The command that runs `script` without TensorFlow."""
  return [sys.executable, '-c', PRELUDE + script]


def run_py(*args: str) -> list[str]:
  """The command that runs `python run.py *args` (from the checkout) without TensorFlow."""
  return python("import runpy; sys.argv[0] = 'run.py'; "
                "runpy.run_path('run.py', run_name='__main__')") + list(args)
