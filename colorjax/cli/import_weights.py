"""`run.py import_weights PATH.pth --workdir=DIR`: a released network as a colorjax run
(colorjax/released.py)."""

import pathlib

from colorjax import released
from colorjax.errors import ArgumentParser


def main(argv) -> int:
  parser = ArgumentParser(
      prog='python run.py import_weights', allow_abbrev=False,
      description="Turn the released Zhang et al. 2016 network (PyTorch 'eccv16' state_dict, "
                  'colorization_release_v2-9b330a0b.pth) into a colorjax run.')
  parser.add_argument('path', metavar='PATH.pth', help='the downloaded state_dict')
  parser.add_argument('--workdir', required=True, help='the run to write (a new folder)')
  args = parser.parse_args(argv)
  workdir = released.import_weights(pathlib.Path(args.path), pathlib.Path(args.workdir))
  print(f'imported {args.path} into {workdir}: python run.py colorize --workdir={workdir} '
        'PHOTO...')
  return 0
