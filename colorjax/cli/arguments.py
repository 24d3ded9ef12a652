"""What colorize and evaluate share on the command line: the options that pick a trained
run's network and how it sees a photo, and the output folder's check."""

import argparse
import pathlib
import tempfile

from colorjax.data import images
from colorjax.errors import UsageError
from colorjax.families.spec import DEFAULT_TEMPERATURE


def check_writable(out: pathlib.Path):
  """Refuse an output folder that cannot be written before any inference runs."""
  try:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out):
      pass
  except OSError as e:
    raise UsageError(f'cannot write to --out={out} ({e.strerror or type(e).__name__}); pass a '
                     'folder you can write to') from None



def parse_size(text: str):
  """'256' -> 256 (a short side); '256x384' -> (256, 384); within the working-size budget."""
  parts = text.lower().split('x')
  if not (len(parts) in (1, 2) and all(p.isdigit() for p in parts)):
    raise argparse.ArgumentTypeError(f"'{text}' is not N or HxW (e.g. 256 or 256x384)")
  size = int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
  try:
    return images.check_working_size(size)
  except ValueError:
    raise argparse.ArgumentTypeError(f"'{text}': each side must be 1 to "
                                     f'{images.MAX_WORKING_SIDE} pixels') from None


def positive_number(text: str) -> float:
  value = float(text)
  if not 0 < value < float('inf'):
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive number")
  return value


def add_run_arguments(parser):
  """The options that pick a trained run's network and how it sees a photo: colorize and
  evaluate share them."""
  parser.add_argument('--workdir', required=True,
                      help='the trained run: runs/<experiment>[/<variant>]')
  parser.add_argument('--network', help='which network of a workdir that holds several: a '
                      'U-Net task, a flowers colorizer, an ablation scheme')
  parser.add_argument('--temperature', type=positive_number,
                      help=f'annealed-mean T of the softmax head (default {DEFAULT_TEMPERATURE};'
                           ' 1 for an imported eccv16 network)')
  parser.add_argument('--size', type=parse_size,
                      help="the resolution the network sees: N (short side N, aspect kept) "
                           "or HxW, rounded to the network's stride (default per family: "
                           'the Zhang et al. network 256, the others their training crop); '
                           f'at most {images.MAX_WORKING_SIDE} a side')
  parser.add_argument('--pipeline', choices=('default', 'published'), default='default',
                      help="Zhang et al.'s networks: 'published' colours as the authors' demo "
                           '(photo squashed to 256x256, per-channel clipping); default: '
                           'aspect kept, chroma fitted to the gamut along its hue')
