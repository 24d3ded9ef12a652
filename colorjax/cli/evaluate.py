"""`run.py evaluate`: score a trained run on any photos, at full resolution.

  python run.py evaluate --workdir=runs/zhang_softmax kodak/ --out=runs/eval_kodak
  python run.py evaluate --workdir=runs/zhang_softmax --source=folder:$COLORJAX_BSDS300

  python run.py evaluate --workdir=runs/eccv16 --protocol=val5k --pipeline=published

Each photo is colorized exactly as `run.py colorize` writes it and scored with the
experiments' metrics, each with a 95% bootstrap interval over the photos, beside a gray and
a mean-colour baseline, and the model's paired difference from each (eval/photos.py). With
--protocol=val5k, the photos are the field's benchmark (ImageNet val5k, or PATHs / --source
prepared the same way) and the run's FID, CF, deltaCF, PSNR and SSIM are set beside the
published rows (eval/protocol.py). Writes evaluation.json, evaluation.md and evaluation.png
(input, output, original).
"""

import json
import pathlib
import sys

from colorjax import inference, released
from colorjax.cli import arguments
from colorjax.errors import ArgumentParser, UsageError
from colorjax.eval import metrics, photos, protocol, report, stats
from colorjax.families.spec import Options
from colorjax.models import inception

NO_FID = (f'FID left out: no Inception-v3 weights. Download torchvision\'s {inception.FILE} '
          f'(https://download.pytorch.org/models/{inception.FILE}) and run python run.py '
          'import_weights FILE once (or pass --fid_weights=FILE)')


def _parse_args(argv):
  parser = ArgumentParser(
      prog='python run.py evaluate', allow_abbrev=False,
      description='Score a trained run on photos at full resolution, as colorize writes them, '
                  'with 95%% bootstrap intervals and gray / mean-colour baselines.')
  parser.add_argument('paths', nargs='*', metavar='PATH', help='image files or folders')
  parser.add_argument('--source', help='instead of PATHs: a data source (samples, folder:PATH, '
                      'npz:PATH, a tfds name), its eval split')
  arguments.add_run_arguments(parser)
  parser.add_argument('--out', help='where the evaluation goes (default <workdir>/evaluation)')
  parser.add_argument('--bootstrap', type=int, default=1000, help='resamples (default 1000)')
  parser.add_argument('--protocol', choices=[protocol.NAME],
                      help=f'the field\'s benchmark: the first {protocol.COUNT} images of '
                      f'{protocol.DATASET} validation (or of PATHs / --source), '
                      f'{protocol.SIDE}x{protocol.SIDE} centre crops; adds FID, CF, deltaCF '
                      'and SSIM beside the published rows')
  parser.add_argument('--fid_weights', metavar='FILE',
                      help=f'--protocol: Inception-v3 for FID ({inception.FILE}, or the file '
                      'import_weights writes; default: the one import_weights kept)')
  args = parser.parse_args(argv)
  if args.paths and args.source:
    parser.error('pass image PATHs or --source=SPEC, not both')
  if not (args.paths or args.source or args.protocol):
    parser.error('pass image PATHs or --source=SPEC (or --protocol=val5k)')
  if args.fid_weights and not args.protocol:
    parser.error('--fid_weights goes with --protocol=val5k (FID is computed there)')
  if not 100 <= args.bootstrap <= stats.MAX_RESAMPLES:
    parser.error(f'--bootstrap={args.bootstrap}: use 100 to {stats.MAX_RESAMPLES} resamples')
  return args


def main(argv) -> int:
  args = _parse_args(argv)
  inference.cache_compiled_programs()
  options = Options(network=args.network, temperature=args.temperature,
                    pipeline=args.pipeline)
  config, workdir, options = inference.run_config(pathlib.Path(args.workdir), options)
  # The user's mistakes first: a --source, a --fid_weights file.
  if args.protocol:
    named_photos = protocol.named_photos(args.paths, args.source)
    fid_variables = released.fid_variables(args.fid_weights)
    if fid_variables is None:
      print(NO_FID, file=sys.stderr)
  else:
    named_photos, fid_variables = photos.named_photos(args.paths, args.source), None
  spec, variables = inference.load_network(workdir, options)
  colorizer = inference.Colorizer(spec, variables, options, args.size)
  out = pathlib.Path(args.out) if args.out else workdir / 'evaluation'
  arguments.check_writable(out)
  fid_features = protocol.FidFeatures(fid_variables) if fid_variables is not None else None
  sums, rows, names = photos.score(colorizer, named_photos,
                                   photos.training_mean_ab(config, workdir),
                                   keep_gray=bool(args.protocol), fid_features=fid_features)
  if not names:
    raise UsageError('no photo could be read: pass image files or folders, or --source')
  per_image = {name: photos.stacked(photo_sums) for name, photo_sums in sums.items()}
  results = {name: stats.bootstrap(sums, metrics.summarize, args.bootstrap)
             for name, sums in per_image.items()}
  differences = {('model', baseline): stats.paired_difference(
      per_image['model'], per_image[baseline], metrics.summarize, args.bootstrap)
      for baseline in per_image if baseline != 'model'}
  fid_value = fid_features.distance() if fid_features else None
  record = {'workdir': str(workdir), 'photos': names, 'metrics': results,
            'model_minus': {b: d for (_, b), d in differences.items()}}
  if args.protocol:
    record['protocol'] = {'name': args.protocol, 'fid': fid_value}
  (out / 'evaluation.json').write_text(json.dumps(record, indent=2) + '\n')
  report.save_image_grid(out / 'evaluation.png', rows, ['input (L)', 'colorized', 'original'])
  prepared = (f'as the {args.protocol} protocol prepares them (below)' if args.protocol
              else 'at full resolution')
  path = report.write_report(out, f'Evaluation of {workdir}', [
      f'{len(names)} photos {prepared}, colorized as `run.py colorize` writes them '
      f"(working size: {args.size or 'the family default'}, pipeline: {args.pipeline}). "
      'Each figure: value over all '
      f'photos [95% bootstrap interval, {args.bootstrap} resamples of the photos]. Baselines: '
      'gray (ab = 0 everywhere) and, where the training data is known, its mean ab on every '
      'pixel; both keep the true L.',
      *(_protocol_section(args, workdir, len(names), results['model'], fid_value)
        if args.protocol else []),
      report.interval_table(results), report.METRICS_NOTE,
      '## The model against the baselines',
      *report.comparison(differences, f'the {len(names)} photos', resamples=args.bootstrap),
      '![evaluation](evaluation.png)'],
      name='evaluation.md')  # never the run's own report.md, whatever --out is
  print(f'evaluated {len(names)} photo(s): {path}')
  return 0


def _protocol_section(args, workdir, count, result, fid_value) -> list[str]:
  """evaluation.md's benchmark table: the run's row under the published ones."""
  photos_used = (f'{count} images of {protocol.DATASET} validation, the first by file name'
                 if not (args.paths or args.source) else
                 f"{count} images of {args.source or ', '.join(args.paths)} (not ImageNet "
                 'val5k: set beside the published rows with care)')
  return [f'## The {args.protocol} protocol',
          f'{photos_used}, each resized to a short side of {protocol.SIDE} and centre-cropped '
          f'to {protocol.SIDE}x{protocol.SIDE}, gray ones included. FID: Inception-v3 pool '
          'features of the outputs against the same images\' originals (no interval: its '
          'bootstrap would take a 2048x2048 matrix square root per resample); the other '
          'figures with 95% bootstrap intervals. docs/evaluation.md says how each matches '
          'the published scripts.',
          *protocol.table(f'{workdir.name} ({args.pipeline} pipeline)', result, fid_value)]
