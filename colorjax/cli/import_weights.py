"""`run.py import_weights PATH.pth [--workdir=DIR]`: a released network as a colorjax run, or
Inception-v3 for FID (colorjax/released.py)."""

import pathlib

from colorjax import released
from colorjax.errors import ArgumentParser


def main(argv) -> int:
  parser = ArgumentParser(
      prog='python run.py import_weights', allow_abbrev=False,
      description='Turn a released Zhang et al. network (a PyTorch state_dict: eccv16, '
                  'colorization_release_v2-9b330a0b.pth, or siggraph17, '
                  'siggraph17-df00044c.pth, told apart by its keys) into a colorjax run; or '
                  "keep torchvision's Inception-v3 (inception_v3_google-1a9a5a14.pth) as the "
                  'FID network of evaluate --protocol.')
  parser.add_argument('path', metavar='PATH.pth', help='the downloaded state_dict')
  parser.add_argument('--workdir', help='the run to write (a new folder); not for Inception-v3')
  args = parser.parse_args(argv)
  workdir = pathlib.Path(args.workdir) if args.workdir else None
  print(released.import_file(pathlib.Path(args.path), workdir))
  return 0
