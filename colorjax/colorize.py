"""Colorize a user's image files with a trained run.

  python run.py colorize --workdir=runs/zhang_softmax/smoke old_photos/ --out=colorized

Any run's workdir works: its config.json names the program, whose `colorizer(config, workdir,
options)` says which checkpoint holds the trained network, the state it restores into, the
resolution the network works at and how it turns L into ab. Files go through the network in
batches at that resolution; the predicted ab is resized to each file's own size and joined
with the file's full-resolution L, then pulled into the sRGB gamut along its hue
(color.fit_chroma_to_gamut), so the output has the input's size, sharpness and lightness.
Colour inputs are used through their L only, exactly as a gray photo of the same lightness.
"""

import concurrent.futures
import dataclasses
import importlib
import json
import pathlib
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import PIL.Image
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from colorjax import color, images, losses, report, train
from colorjax.errors import ArgumentParser, UsageError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
DEFAULT_TEMPERATURE = 0.38  # Zhang et al.'s annealed-mean T


@dataclasses.dataclass(frozen=True)
class Options:
  """What the user chose beyond the files: a program's colorizer reads what applies to it."""
  network: str | None = None      # which of a workdir's networks (e.g. a U-Net task)
  temperature: float | None = None  # annealed-mean T of the softmax head
  samples: int | None = None      # GAN outputs per file
  seed: int = 0                   # GAN noise


@dataclasses.dataclass(frozen=True)
class Trained:
  """One trained network of a workdir, and how it colours L."""
  checkpoint_dir: pathlib.Path   # holds checkpoints/
  init: Callable[[], Any]        # () -> a fresh state shaped as the checkpoint's
  predict_ab: Callable           # (state, lab (N, h, w, 3), keys (N,)) -> ab (S, N, h', w', 2)
  size: tuple[int, int]          # the working resolution (h, w)
  uses: frozenset = frozenset()  # the Options fields it reads besides network


def choose(options: Options, available, default: str) -> str:
  """The network the user named (--network), or the default; one line if it is unknown."""
  name = options.network or default
  if name not in available:
    raise UsageError(f"--network={name}: this workdir holds {', '.join(available)}")
  return name


def single(options: Options, program: str):
  if options.network is not None:
    raise UsageError(f'--network={options.network}: a {program} workdir holds one network; '
                     'leave --network out')


def _load_config(workdir: pathlib.Path, options: Options):
  """(config, run workdir, options): a subfolder of a multi-network run (runs/unet_portrait/
  l2ab) stands for that network of its parent's run."""
  if not (workdir / 'config.json').is_file():
    if (workdir.parent / 'config.json').is_file() and options.network is None:
      return _load_config(workdir.parent, dataclasses.replace(options, network=workdir.name))
    raise UsageError(f'{workdir} holds no run (no config.json): pass '
                     '--workdir=runs/<experiment>[/<variant>] of a trained run')
  config = ml_collections.ConfigDict(json.loads((workdir / 'config.json').read_text()))
  return config, workdir, options


def load(workdir: pathlib.Path, options: Options) -> tuple[Trained, Any]:
  """The trained network of a workdir and its restored state."""
  config, workdir, options = _load_config(workdir, options)
  program = importlib.import_module(f'colorjax.{config.program}')
  if not hasattr(program, 'colorizer'):
    raise UsageError(f'{workdir} is a {config.program} run, which trains no colorizer: pass '
                     'the workdir of a training run')
  trained = program.colorizer(config, workdir, options)
  for field in ('temperature', 'samples'):
    if getattr(options, field) is not None and field not in trained.uses:
      raise UsageError(f'--{field} does not apply to a {config.program} run '
                       f"({'the Zhang softmax head' if field == 'temperature' else 'the GAN'}"
                       ' takes it)')
  return trained, _restore(trained)


def _restore(trained: Trained):
  directory = trained.checkpoint_dir / 'checkpoints'
  if not any(directory.glob('[0-9]*')):
    raise UsageError(f'no checkpoint in {directory}: train first (python run.py '
                     '--experiment=...), or pass the --workdir of a trained run')
  checkpoints = train.Checkpoints(trained.checkpoint_dir, max_to_keep=None)
  try:
    abstract = jax.eval_shape(trained.init)
    mismatch = checkpoints.mismatch(abstract)
    if mismatch:
      raise UsageError(f'the checkpoint in {directory} does not match the config.json beside '
                       f'it ({mismatch}); pass the workdir the checkpoint was trained in')
    return checkpoints.restore(abstract)
  finally:
    checkpoints.close()


def find_images(paths) -> tuple[list[pathlib.Path], list[str]]:
  """Files named and image files in folders named (recursively, sorted); and the paths that
  do not exist."""
  files, missing = [], []
  for path in map(pathlib.Path, paths):
    if path.is_dir():
      files += sorted(p for p in path.rglob('*')
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
      files.append(path)
    else:
      missing.append(str(path))
  return files, missing


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


def _read(path):
  """uint8 RGB of a file, or the reason it cannot be read."""
  try:
    return images.read_rgb(path)
  except Exception as e:  # decoders raise many types; all mean "not an image we can read"
    return type(e).__name__


@jax.jit
def _join(rgb_uint8, ab_small):
  """A file's uint8 (H, W, 3) and predicted ab (S, h, w, 2) -> S colorized uint8 (H, W, 3)
  with the file's L, and the file as the gray the network saw."""
  lightness = losses.lab_from_uint8(rgb_uint8)[..., :1]
  samples = ab_small.shape[0]
  ab = jax.image.resize(ab_small, (samples, *lightness.shape[:2], 2), 'linear')
  lab = jnp.concatenate([jnp.broadcast_to(lightness, (samples, *lightness.shape)), ab], -1)
  to_uint8 = lambda rgb: jnp.round(color.lab_to_rgb(rgb) * 255).astype(jnp.uint8)
  gray = jnp.concatenate([lightness, jnp.zeros_like(lightness), jnp.zeros_like(lightness)], -1)
  return to_uint8(color.fit_chroma_to_gamut(lab)), to_uint8(gray)


def _make_predict(trained: Trained, state, seed: int):
  """jitted (uint8 RGB at the working size, file indices) -> ab (S, N, h', w', 2), data-
  parallel over the mesh; file i's noise depends on (seed, i) only."""
  mesh = train.data_mesh()
  replicated, split = NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))

  def predict(state, rgb_uint8, indices):
    lab = losses.lab_from_uint8(rgb_uint8)
    gray = jnp.concatenate([lab[..., :1], jnp.zeros_like(lab[..., 1:])], -1)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(seed), indices)
    return trained.predict_ab(state, gray, keys)

  jitted = jax.jit(predict, in_shardings=(replicated, split, split))
  state = jax.device_put(state, replicated)
  return lambda rgb, indices: jitted(state, rgb, indices)


def colorize_files(trained, state, files, names, *, seed=0, compare=False, batch_size=8):
  """Colorize `files` into `names` (one per file; GAN samples get _1, _2, ...): the number of
  files that could not be read (each reported on stderr). The next batch is decoded while
  the device works on this one."""
  if not files:
    return 0
  predict = _make_predict(trained, state, seed)
  devices = jax.device_count()
  batch_size = -(-min(batch_size, len(files)) // devices) * devices  # one shape: one compile
  chunks = [range(start, min(start + batch_size, len(files)))
            for start in range(0, len(files), batch_size)]
  failed = 0
  with concurrent.futures.ThreadPoolExecutor() as pool, \
      tqdm(total=len(files), desc='colorize', unit='image', disable=len(files) < 2) as bar:
    decode = lambda chunk: [pool.submit(_read, files[i]) for i in chunk]
    pending = decode(chunks[0])
    for n, chunk in enumerate(chunks):
      decoded = dict(zip(chunk, (future.result() for future in pending)))
      if n + 1 < len(chunks):
        pending = decode(chunks[n + 1])
      good = []
      for i, rgb in decoded.items():
        if isinstance(rgb, str):
          failed += 1
          tqdm.write(f'skipped {files[i]}: cannot read it as an image ({rgb})', file=sys.stderr)
        else:
          good.append(i)
      if good:
        small = list(pool.map(lambda i: images.resize_rgb(decoded[i], trained.size), good))
        padding = batch_size - len(good)
        ab = predict(np.stack(small + small[:1] * padding),
                     np.asarray(good + [0] * padding, np.int32))
        for k, i in enumerate(good):
          _write(names[i], decoded[i], *jax.device_get(_join(decoded[i], ab[:, k])), compare)
      bar.update(len(chunk))
  return failed


def _write(name: pathlib.Path, rgb, outputs, gray, compare):
  """name.png, or name_1.png, name_2.png, ... for several samples; with `compare`, also
  name_compare.png: the gray input, the outputs, and the original when it has colour."""
  name.parent.mkdir(parents=True, exist_ok=True)
  several = len(outputs) > 1
  for i, output in enumerate(outputs):
    PIL.Image.fromarray(output).save(name.with_stem(f'{name.stem}_{i + 1}') if several else name)
  if compare:
    panels = [gray, *outputs]
    titles = ['input (gray)'] + ([f'sample {i + 1}' for i in range(len(outputs))] if several
                                 else ['colorized'])
    if images.has_colour(rgb, threshold=1.0):
      panels, titles = panels + [rgb], titles + ['original']
    report.save_image_row(name.with_stem(f'{name.stem}_compare'), panels, titles)


def _parse_args(argv):
  parser = ArgumentParser(
      prog='python run.py colorize', allow_abbrev=False,
      description='Colorize image files (jpg, png, bmp, tif, webp; gray, RGB, RGBA, 8 or 16 '
                  'bit; any size) with a trained run.')
  parser.add_argument('paths', nargs='+', metavar='PATH', help='image files or folders')
  parser.add_argument('--workdir', required=True,
                      help='the trained run: runs/<experiment>[/<variant>]')
  parser.add_argument('--out', default='colorized', help='output folder (default colorized)')
  parser.add_argument('--network', help='which network of a workdir that holds several: a '
                      'U-Net task, a flowers colorizer, an ablation scheme')
  parser.add_argument('--compare', action='store_true',
                      help='also write <name>_compare.png: input, output, original')
  parser.add_argument('--temperature', type=float,
                      help=f'annealed-mean T of the softmax head (default {DEFAULT_TEMPERATURE})')
  parser.add_argument('--samples', type=int, help='GAN: outputs per file (default 1)')
  parser.add_argument('--seed', type=int, default=0, help='GAN: noise seed (default 0)')
  parser.add_argument('--batch_size', type=int, default=8, help='files per device batch')
  args = parser.parse_args(argv)
  if args.temperature is not None and args.temperature <= 0:
    parser.error(f'--temperature={args.temperature} must be positive')
  if args.samples is not None and args.samples < 1:
    parser.error(f'--samples={args.samples} must be at least 1')
  if args.batch_size < 1:
    parser.error(f'--batch_size={args.batch_size} must be at least 1')
  return args


def main(argv) -> int:
  """0 when every file was colorized, 1 when some could not be read (the rest are done)."""
  args = _parse_args(argv)
  options = Options(args.network, args.temperature, args.samples, args.seed)
  trained, state = load(pathlib.Path(args.workdir), options)
  files, missing = find_images(args.paths)
  for path in missing:
    print(f'skipped {path}: no such file or folder', file=sys.stderr)
  if not files and not missing:
    raise UsageError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(args.paths)}")
  out = pathlib.Path(args.out)
  failed = len(missing) + colorize_files(trained, state, files, output_names(files, out),
                                         seed=args.seed, compare=args.compare,
                                         batch_size=args.batch_size)
  done = len(files) + len(missing) - failed
  print(f'colorized {done} of {done + failed} file(s) into {out}'
        + (f'; {failed} skipped (see above)' if failed else ''))
  return 1 if failed else 0
