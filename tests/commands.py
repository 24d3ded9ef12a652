"""colorjax's command line as the tests run it: in this process through cli.main.run (no
start-up: the usage-error tables), or as a user runs it, `python run.py` in a subprocess on
the lean runtime (end to end: tests/lean.py)."""

import pathlib
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import skimage.color
import skimage.data

from colorjax.cli import colorize, main
from colorjax.data import images
from tests import lean

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_py(*args, lean_runtime=True, timeout=300, **kwargs) -> subprocess.CompletedProcess:
  """`python run.py *args` as a user runs it, on the lean runtime (no optional package)
  unless asked otherwise."""
  args = [str(a) for a in args]
  command = lean.run_py(*args) if lean_runtime else [sys.executable, 'run.py', *args]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        **kwargs)


def run_in_process(capsys, *args) -> tuple[int, str]:
  """(exit status, stderr) of `python run.py *args` run by cli.main.run in this process."""
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_:
    main.run([str(a) for a in args])
  return exit_.value.code, capsys.readouterr().err


def shown(stderr: str) -> list[str]:
  """The lines a terminal shows: progress bars redraw themselves with carriage returns."""
  lines = (line.rsplit('\r', 1)[-1] for line in stderr.split('\n'))
  return [line for line in lines if line.strip()]


def assert_one_line(code: int, stderr: str, message: str, progress_bars=False):
  """Exit status 2 and one line naming the problem (after the progress bar of a run that was
  under way, if `progress_bars`)."""
  lines = shown(stderr)
  if progress_bars:
    lines = [line for line in lines if 'step/s' not in line]
  assert code == 2 and len(lines) == 1 and message in lines[0], stderr


def colorize_a_photo(workdir, out, *args) -> list:
  """Colorize an odd-sized photo with a run's checkpoint (in this process: no start-up);
  check that every output keeps its size and L; return them."""
  photo = images.resize_rgb(skimage.data.astronaut(), (45, 67))
  out.mkdir(parents=True)
  PIL.Image.fromarray(photo).save(out / 'photo.jpg', quality=95)
  photo = np.asarray(PIL.Image.open(out / 'photo.jpg'))
  assert colorize.main([f'--workdir={workdir}', str(out / 'photo.jpg'), f'--out={out}',
                        *args]) == 0
  outputs = [np.asarray(PIL.Image.open(p)) for p in sorted(out.glob('photo*.png'))]
  for output in outputs:
    assert output.shape == photo.shape
    lightness = [skimage.color.rgb2lab(x)[..., 0] for x in (output, photo)]
    assert np.abs(lightness[0] - lightness[1]).max() <= 0.5
  return outputs
