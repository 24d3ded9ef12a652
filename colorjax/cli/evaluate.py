"""`run.py evaluate`: score a trained run on any photos, at full resolution.

  python run.py evaluate --workdir=runs/zhang_softmax kodak/ --out=runs/eval_kodak
  python run.py evaluate --workdir=runs/zhang_softmax --source=folder:$COLORJAX_BSDS300

Each photo is colorized exactly as `run.py colorize` writes it and scored with the
experiments' metrics, each with a 95% bootstrap interval over the photos, beside a gray and
a mean-colour baseline, and the model's paired difference from each (eval/photos.py).
Writes evaluation.json, evaluation.md and evaluation.png (input, output, original).
"""

import json
import pathlib

from colorjax import inference
from colorjax.cli import arguments
from colorjax.errors import ArgumentParser, UsageError
from colorjax.eval import metrics, photos, report, stats
from colorjax.families.spec import Options


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
  args = parser.parse_args(argv)
  if bool(args.paths) == bool(args.source):
    parser.error('pass image PATHs or --source=SPEC (one of the two)')
  if not 100 <= args.bootstrap <= stats.MAX_RESAMPLES:
    parser.error(f'--bootstrap={args.bootstrap}: use 100 to {stats.MAX_RESAMPLES} resamples')
  return args


def main(argv) -> int:
  args = _parse_args(argv)
  inference.cache_compiled_programs()
  options = Options(network=args.network, temperature=args.temperature,
                    pipeline=args.pipeline)
  config, workdir, options = inference.run_config(pathlib.Path(args.workdir), options)
  named_photos = photos.named_photos(args.paths, args.source)  # a --source mistake: first
  spec, variables = inference.load_network(workdir, options)
  colorizer = inference.Colorizer(spec, variables, options, args.size)
  out = pathlib.Path(args.out) if args.out else workdir / 'evaluation'
  arguments.check_writable(out)
  sums, rows, names = photos.score(colorizer, named_photos,
                                   photos.training_mean_ab(config, workdir))
  if not names:
    raise UsageError('no photo could be read: pass image files or folders, or --source')
  per_image = {name: photos.stacked(photo_sums) for name, photo_sums in sums.items()}
  results = {name: stats.bootstrap(sums, metrics.summarize, args.bootstrap)
             for name, sums in per_image.items()}
  differences = {('model', baseline): stats.paired_difference(
      per_image['model'], per_image[baseline], metrics.summarize, args.bootstrap)
      for baseline in per_image if baseline != 'model'}
  (out / 'evaluation.json').write_text(json.dumps(
      {'workdir': str(workdir), 'photos': names, 'metrics': results,
       'model_minus': {b: d for (_, b), d in differences.items()}}, indent=2) + '\n')
  report.save_image_grid(out / 'evaluation.png', rows, ['input (L)', 'colorized', 'original'])
  path = report.write_report(out, f'Evaluation of {workdir}', [
      f'{len(names)} photos at full resolution, colorized as `run.py colorize` writes them '
      f"(working size: {args.size or 'the family default'}, pipeline: {args.pipeline}). "
      'Each figure: value over all '
      f'photos [95% bootstrap interval, {args.bootstrap} resamples of the photos]. Baselines: '
      'gray (ab = 0 everywhere) and, where the training data is known, its mean ab on every '
      'pixel; both keep the true L.',
      report.interval_table(results), report.METRICS_NOTE,
      '## The model against the baselines',
      *report.comparison(differences, f'the {len(names)} photos', resamples=args.bootstrap),
      '![evaluation](evaluation.png)'],
      name='evaluation.md')  # never the run's own report.md, whatever --out is
  print(f'evaluated {len(names)} photo(s): {path}')
  return 0
