"""`run.py import_weights PATH.pth --workdir=DIR`: a released network as a colorjax run
(colorjax/released.py)."""

import pathlib

from colorjax import released
from colorjax.errors import ArgumentParser


def main(argv) -> int:
  parser = ArgumentParser(
      prog='python run.py import_weights', allow_abbrev=False,
      description='Turn a released Zhang et al. network (a PyTorch state_dict: eccv16, '
                  'colorization_release_v2-9b330a0b.pth, or siggraph17, '
                  'siggraph17-df00044c.pth, told apart by its keys) into a colorjax run.')
  parser.add_argument('path', metavar='PATH.pth', help='the downloaded state_dict')
  parser.add_argument('--workdir', required=True, help='the run to write (a new folder)')
  args = parser.parse_args(argv)
  workdir = pathlib.Path(args.workdir)
  release = released.import_release(pathlib.Path(args.path), workdir)
  print(f'imported {args.path} (the released {release.name} network) into {workdir}: '
        f'python run.py colorize --workdir={workdir} PHOTO...')
  return 0
