"""User hints for a network that takes them (siggraph17): points of a photo with the colour
the user wants there, as `run.py colorize --hints=FILE.json` and colorjax.load's
`colorizer(image, hints=[...])` take them.

One image's hints are a list of objects:

  {"y": 120, "x": 80, "rgb": [200, 40, 30], "size": 5}   # row, column; sRGB 0-255
  {"y": 300, "x": 40, "ab": [20, -40]}                    # Lab a, b

- `y`, `x`: the patch's centre in pixels of the photo as it is shown (upright by its EXIF
  orientation), row and column from the top left: 0 <= y < height, 0 <= x < width.
- the colour, one of: `rgb`, three numbers 0-255, of which the hint keeps the chroma (Lab
  a, b; the lightness is the photo's own), or `ab`, Lab a and b, each in [-128, 127].
- `size` (default 1): the side of the square patch, in pixels of the photo. It covers the
  pixels of the network's input whose centres fall in it, and at least the one its centre
  falls in. A later hint overrides an earlier one where they overlap.

The file for colorize maps image files to such lists; a key names a file by its path or by
the end of it (`photo.jpg`, `old/photo.jpg`), and must name exactly one of the inputs:

  {"photo.jpg": [{"y": 120, "x": 80, "rgb": [200, 40, 30], "size": 5}]}

The network sees the hints as the published one does: ab (here in Lab units; /110 is folded
into its first kernel) where a hint is and 0 elsewhere, and a 0/1 mask.
"""

import dataclasses
import json
import math
import pathlib

import numpy as np

from colorjax import color
from colorjax.data import images
from colorjax.errors import UsageError

KEYS = ('y', 'x', 'rgb', 'ab', 'size')


@dataclasses.dataclass(frozen=True)
class Hint:
  y: float
  x: float
  ab: tuple[float, float]  # Lab units
  size: float = 1.0


def parse(items) -> tuple[Hint, ...]:
  """One image's hints (a list of objects, the module's schema) -> Hints; a ValueError
  naming the first mistake."""
  if not isinstance(items, (list, tuple)):
    raise ValueError(f'hints are a list of {{"y", "x", "rgb" or "ab", "size"}} objects, not '
                     f'{type(items).__name__}')
  return tuple(_hint(item, number) for number, item in enumerate(items, 1))


def _hint(item, number: int) -> Hint:
  if not isinstance(item, dict):
    raise ValueError(f'hint {number} is {type(item).__name__}, not an object with "y", "x", '
                     '"rgb" or "ab", and "size"')
  unknown = sorted(set(item) - set(KEYS))
  if unknown:
    raise ValueError(f"hint {number}: unknown key '{unknown[0]}' (known: {', '.join(KEYS)})")
  if 'y' not in item or 'x' not in item:
    raise ValueError(f'hint {number}: give its position as "y" and "x" (pixels of the photo)')
  if ('rgb' in item) == ('ab' in item):
    raise ValueError(f'hint {number}: give its colour as "rgb" ([r, g, b], 0-255) or "ab" '
                     '([a, b]), one of the two')
  (y,), (x,) = (_numbers(item[k], 1, 0, math.inf, f'hint {number}: "{k}"') for k in 'yx')
  (size,) = _numbers(item.get('size', 1), 1, 1, math.inf, f'hint {number}: "size"')
  if 'rgb' in item:
    rgb = _numbers(item['rgb'], 3, 0, 255, f'hint {number}: "rgb"')
    ab = np.asarray(color.rgb_to_lab(np.asarray(rgb, np.float32) / 255))[1:]
  else:
    ab = _numbers(item['ab'], 2, -128, 127, f'hint {number}: "ab"')
  return Hint(y, x, tuple(float(v) for v in ab), size)


def _numbers(value, count: int, low: float, high: float, what: str) -> list[float]:
  """`count` finite numbers in [low, high] (one number when count is 1, else a list)."""
  values = [value] if count == 1 else value
  if not (isinstance(values, list) and len(values) == count and all(
      isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high
      for v in values)):
    shape = 'a number' if count == 1 else f'a list of {count} numbers'
    raise ValueError(f'{what} is {json.dumps(value)}: pass {shape} in [{low:g}, {high:g}]')
  return [float(v) for v in values]


def planes(hints, photo_size, working_size) -> np.ndarray:
  """(h, w, 3) float32 at the working size: the hints' ab (Lab units) where they are, 0
  elsewhere, and the 0/1 mask; a ValueError for a hint outside the photo."""
  check_inside(hints, photo_size)
  out = np.zeros((*working_size, 3), np.float32)
  for hint in hints:
    rows, cols = (_span(centre, hint.size, work / photo, work) for centre, work, photo
                  in zip((hint.y, hint.x), working_size, photo_size))
    out[rows, cols] = (*hint.ab, 1.0)
  return out


def check_inside(hints, photo_size):
  height, width = photo_size
  for number, hint in enumerate(hints, 1):
    if not (hint.y < height and hint.x < width):
      raise ValueError(f'hint {number} at y={hint.y:g}, x={hint.x:g} lies outside the photo '
                       f'({height}x{width} pixels: 0 <= y < {height}, 0 <= x < {width})')


def _span(centre: float, size: float, scale: float, length: int) -> slice:
  """The working pixels whose centres lie in the patch [centre + 0.5 - size / 2, centre + 0.5
  + size / 2) of the photo (pixel i spans [i, i + 1)), at least the one holding its centre."""
  first = math.ceil((centre + 0.5 - size / 2) * scale - 0.5)
  stop = math.ceil((centre + 0.5 + size / 2) * scale - 0.5)
  if stop <= first:
    first = min(int((centre + 0.5) * scale), length - 1)
    stop = first + 1
  return slice(max(first, 0), min(stop, length))


def for_files(path, files) -> list[tuple[Hint, ...]]:
  """Each input file's hints from a --hints JSON file (() where it names none); one line for
  any mistake in it, before anything is colorized."""
  try:
    data = json.loads(pathlib.Path(path).read_text())
  except OSError as e:
    raise UsageError(f'--hints={path}: {e.strerror or type(e).__name__}') from None
  except ValueError as e:  # JSON, or UTF-8
    raise UsageError(f'--hints={path} is not valid JSON ({e})') from None
  if not isinstance(data, dict):
    raise UsageError(f'--hints={path} holds {type(data).__name__}: pass a JSON object of '
                     'image file -> list of hints (docs/colorize.md)')
  by_file, named = [()] * len(files), {}
  for key, items in data.items():
    index = _named_file(path, key, files)
    if index in named:
      raise UsageError(f"--hints={path}: '{named[index]}' and '{key}' both name {files[index]}")
    named[index] = key
    try:
      by_file[index] = parse(items)
      check_inside(by_file[index], _size(files[index]))
    except ValueError as e:
      raise UsageError(f"--hints={path}: '{key}': {e}") from None
  return by_file


def _named_file(path, key: str, files) -> int:
  """The index of the one input file that `key` names (its path, or the end of it)."""
  parts = pathlib.PurePath(key).parts
  matches = [i for i, file in enumerate(files)
             if file.parts[-len(parts):] == parts or file.resolve() == pathlib.Path(key).resolve()]
  if len(matches) != 1:
    found = ', '.join(str(files[i]) for i in matches) if matches else 'none'
    raise UsageError(f"--hints={path}: '{key}' must name one of the input files (found: "
                     f'{found}); name it by its path or the end of it')
  return matches[0]


def _size(file) -> tuple[int, int]:
  """A photo's (height, width) upright; (inf, inf) when it cannot be read (colorize skips it
  and says why)."""
  try:
    return images.read_rgb(file).shape[:2]
  except Exception:  # decoders raise many types; colorize reports the file
    return (math.inf, math.inf)
