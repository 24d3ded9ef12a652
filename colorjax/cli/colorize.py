"""`run.py colorize`: colour a user's image files with a trained run.

  python run.py colorize --workdir=runs/zhang_softmax/smoke old_photos/ --out=colorized

The command line only: finding files, naming outputs, decoding the next batch while the
devices work, writing PNGs. What a run's network does with a photo is colorjax.inference,
the same code that colorjax.load gives a notebook and the reports are computed with.
"""

import concurrent.futures
import os
import pathlib
import secrets
import sys

import jax
import jax.numpy as jnp
import PIL.Image
from tqdm import tqdm

from colorjax import color, hints as user_hints, inference
from colorjax.cli import arguments
from colorjax.data import images
from colorjax.errors import ArgumentParser, UsageError
from colorjax.families.spec import Options

# zlib level of the PNGs: 1 encodes a 768x512 output 5x faster than Pillow's default 6, in
# a file 6% larger.
PNG_LEVEL = 1


def output_names(files, out: pathlib.Path) -> list[pathlib.Path]:
  """out/<stem>.png per file; a stem met before gets its suffix too (photo_jpg.png), then a
  number. A name that would overwrite an input is refused before anything is written."""
  inputs = {f.resolve() for f in files}
  taken, names = set(), []
  for file in files:
    candidates = [file.stem, f'{file.stem}_{file.suffix[1:].lower()}']
    candidates += [f'{file.stem}_{i}' for i in range(2, len(files) + 2)]
    stem = next(c for c in candidates if c not in taken)
    taken.add(stem)
    name = out / f'{stem}.png'
    if name.resolve() in inputs:
      raise UsageError(f'writing {name} would overwrite an input: pass another --out')
    names.append(name)
  return names


def _read(path, colorizer):
  """uint8 RGB of a file, or why it is skipped: unreadable, or over the memory budget
  (images.MAX_PIXELS, checked before decoding; MAX_WORKING_SIDE, before any resize)."""
  try:
    rgb = images.read_rgb(path)
    colorizer.working_size(*rgb.shape[:2])
    return rgb
  except images.TooLarge as e:
    return str(e)
  except Exception as e:  # decoders raise many types; all mean "not an image we can read"
    return f'cannot read it as an image ({type(e).__name__})'


@jax.jit
def _gray(rgb_uint8):
  """The image as the gray the network saw: its L with no colour, as uint8 sRGB."""
  lightness = color.lab_from_uint8(rgb_uint8)[..., :1]
  gray = jnp.concatenate([lightness, jnp.zeros_like(lightness), jnp.zeros_like(lightness)], -1)
  return jnp.round(color.lab_to_rgb(gray) * 255).astype(jnp.uint8)


def colorize_files(colorizer: inference.Colorizer, files, names, *, compare=False,
                   batch_size=8, hints=None):
  """Colorize `files` into `names` (one per file; several samples get _1, _2, ...): the number
  of files that could not be read (each reported on stderr). The next batch is decoded, and
  this one's outputs converted and written, while the devices work on the next one (on CPU
  that overlap is a sixth of the time per photo). `hints`: each file's parsed hints
  (hints.for_files)."""
  if not files:
    return 0
  batch_size = min(batch_size, len(files))
  chunks = [range(start, min(start + batch_size, len(files)))
            for start in range(0, len(files), batch_size)]
  failed, writing = 0, []
  with concurrent.futures.ThreadPoolExecutor() as pool, \
      concurrent.futures.ThreadPoolExecutor(2) as writer, \
      tqdm(total=len(files), desc='colorize', unit='image', disable=len(files) < 2) as bar:
    decode = lambda chunk: [pool.submit(_read, files[i], colorizer) for i in chunk]
    pending = decode(chunks[0])
    for n, chunk in enumerate(chunks):
      decoded = dict(zip(chunk, (future.result() for future in pending)))
      if n + 1 < len(chunks):
        pending = decode(chunks[n + 1])
      good = []
      for i, rgb in decoded.items():
        if isinstance(rgb, str):
          failed += 1
          bar.update()
          tqdm.write(f'skipped {files[i]}: {rgb}', file=sys.stderr)
        else:
          good.append(i)
      by_size = {}  # files of one working size go through the network together
      for i in good:
        by_size.setdefault(colorizer.working_size(*decoded[i].shape[:2]), []).append(i)
      for indices in (part for group in by_size.values()
                      for part in _split_in_batch_shapes(group, batch_size)):
        lightness = list(pool.map(
            lambda i: colorizer.network_input(decoded[i], hints[i] if hints else ()), indices))
        ab = colorizer.predict_ab_batch(jnp.concatenate(lightness), indices)
        written, writing = writing, [
            writer.submit(_colorize_and_write, colorizer, names[i], decoded[i], ab[:, k], compare)
            for k, i in enumerate(indices)]
        for future in written:  # the batch before: a write error stops the command here
          future.result()
          bar.update()
    for future in writing:
      future.result()
      bar.update()
  return failed


def _split_in_batch_shapes(indices, batch_size):
  """A group of files of one working size in batches of batch_size and of powers of two
  below it, largest first (6 -> 4 + 2): no padded image goes through the network, and each
  working size compiles a few batch shapes at most (kept on disk by the compilation cache)."""
  shapes = [batch_size] + [2 ** k for k in range(batch_size.bit_length() - 1, -1, -1)
                           if 2 ** k < batch_size]
  parts, start = [], 0
  while start < len(indices):
    size = next(s for s in shapes if s <= len(indices) - start)
    parts.append(indices[start:start + size])
    start += size
  return parts


def _colorize_and_write(colorizer, name, rgb, ab, compare):
  _write(name, rgb, jax.device_get(colorizer.colorized(rgb, ab)), compare)


def _write(name: pathlib.Path, rgb, outputs, compare):
  """name.png, or name_1.png, name_2.png, ... for several samples; with `compare`, also
  name_compare.png: the gray input, the outputs, and the original when it has colour."""
  name.parent.mkdir(parents=True, exist_ok=True)
  several = len(outputs) > 1
  for i, output in enumerate(outputs):
    _replaced(name.with_stem(f'{name.stem}_{i + 1}') if several else name,
              lambda path: PIL.Image.fromarray(output).save(path, compress_level=PNG_LEVEL))
  if compare:
    from colorjax.eval import report  # matplotlib: imported only for the comparison
    panels = [jax.device_get(_gray(rgb)), *outputs]
    titles = ['input (gray)'] + ([f'sample {i + 1}' for i in range(len(outputs))] if several
                                 else ['colorized'])
    if images.has_color(rgb, threshold=1.0):
      panels, titles = panels + [rgb], titles + ['original']
    _replaced(name.with_stem(f'{name.stem}_compare'),
              lambda path: report.save_image_row(path, panels, titles))


def _replaced(name: pathlib.Path, save):
  """save(path) into a temporary file beside `name` that then replaces it: a write that fails
  (a full disk) leaves no torn PNG under the output name, nor a half-overwritten older one,
  and its temporary is removed."""
  temporary = name.with_name(f'.{name.stem}.{secrets.token_hex(4)}.partial.png')
  try:
    save(temporary)
    os.replace(temporary, name)
  except BaseException:
    temporary.unlink(missing_ok=True)
    raise


def _parse_args(argv):
  parser = ArgumentParser(
      prog='python run.py colorize', allow_abbrev=False,
      description='Colorize image files (jpg, png, bmp, tif, webp; gray, RGB, RGBA, 8 or 16 '
                  f'bit; up to {images.MAX_PIXELS / 1e6:g} megapixels) with a trained run.')
  parser.add_argument('paths', nargs='+', metavar='PATH', help='image files or folders')
  arguments.add_run_arguments(parser)
  parser.add_argument('--out', default='colorized', help='output folder (default colorized)')
  parser.add_argument('--compare', action='store_true',
                      help='also write <name>_compare.png: input, output, original')
  parser.add_argument('--samples', type=int, help='GAN: outputs per file (default 1)')
  parser.add_argument('--seed', type=int, default=0, help='GAN: noise seed (default 0)')
  parser.add_argument('--batch_size', type=int, default=8, help='files per batch')
  parser.add_argument('--hints', metavar='FILE.json',
                      help='siggraph17: colours the user gives at points of the photos '
                           '(docs/colorize.md)')
  args = parser.parse_args(argv)
  if args.samples is not None and args.samples < 1:
    parser.error(f'--samples={args.samples} must be at least 1')
  if args.batch_size < 1:
    parser.error(f'--batch_size={args.batch_size} must be at least 1')
  return args


def main(argv) -> int:
  """0 when every file was colorized, 1 when some could not be read (the rest are done)."""
  args = _parse_args(argv)
  inference.cache_compiled_programs()
  options = Options(args.network, args.temperature, args.samples, args.seed, args.pipeline)
  spec, variables = inference.load_network(pathlib.Path(args.workdir), options)
  files, missing = images.find_images(args.paths)
  for path in missing:
    print(f'skipped {path}: no such file or folder', file=sys.stderr)
  if not files and not missing:
    raise UsageError(f"no image files ({', '.join(images.IMAGE_SUFFIXES)}) in "
                     f"{', '.join(args.paths)}")
  out = pathlib.Path(args.out)
  names = output_names(files, out)
  if args.hints and not spec.hints:
    raise UsageError('--hints applies to a network that takes hints (an imported siggraph17 '
                     'run); leave --hints out')
  hints = user_hints.for_files(args.hints, files) if args.hints else None
  arguments.check_writable(out)
  colorizer = inference.Colorizer(spec, variables, options, args.size)
  failed = len(missing) + colorize_files(colorizer, files, names, compare=args.compare,
                                         batch_size=args.batch_size, hints=hints)
  done = len(files) + len(missing) - failed
  print(f'colorized {done} of {done + failed} file(s) into {out}'
        + (f'; {failed} skipped (see above)' if failed else ''))
  return 1 if failed else 0
