"""Run an experiment: python run.py --experiment=NAME[:VARIANT] [--config.key=value ...] [--workdir=DIR].

`python run.py --list` lists the experiments. Running the same command again resumes from the
latest checkpoint in the workdir; a finished run only rewrites its report.
`python run.py colorize --workdir=DIR PATH ...` colorizes image files with a trained run.
"""

import importlib
import os
import pathlib
import sys
import traceback

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # tensorflow's start-up chatter
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # ... and its oneDNN notice

from colorjax import configs  # noqa: E402  (after the environment is set)
from colorjax.errors import ArgumentParser, UsageError  # noqa: E402


def _parse_args(argv):
  parser = ArgumentParser(
      description=__doc__.splitlines()[0], allow_abbrev=False,
      usage='python run.py --experiment=NAME[:VARIANT] [--config.key=value ...] '
            '[--workdir=DIR] | --list | colorize --help')
  parser.add_argument('--experiment', help='an experiment module in experiments/')
  parser.add_argument('--workdir', help='where checkpoints and the report go '
                      '(default runs/<experiment>)')
  parser.add_argument('--list', action='store_true', help='list the experiments and exit')
  parser.add_argument('--coordinator', help="several processes: HOST:PORT of process 0's "
                      'machine (default: none, or what a SLURM job step sets)')
  parser.add_argument('--num_processes', type=int, help='several processes: how many')
  parser.add_argument('--process_id', type=int, help='several processes: this one, 0..N-1')
  args, rest = parser.parse_known_args(argv)
  overrides = {}
  for item in rest:
    key, sep, value = item.partition('=')
    if not key.startswith('--config.') or not sep:
      parser.error(f"unrecognized argument '{item}'")
    overrides[key[len('--config.'):]] = value
  if not args.list and not args.experiment:
    parser.error('--experiment is required')
  return args, overrides


def main(argv):
  if argv[:1] == ['colorize']:
    from colorjax import colorize
    return colorize.main(argv[1:])
  args, overrides = _parse_args(argv)
  if args.list:
    for name, description in configs.list_experiments().items():
      print(f'{name:20s} {description}')
    return 0
  config = configs.apply_overrides(configs.load_config(args.experiment), overrides,
                                   args.experiment)
  workdir = pathlib.Path(args.workdir or pathlib.Path('runs', *args.experiment.split(':')))
  # Heavy imports only once the command line is known to be valid.
  from colorjax import distributed, train
  distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  train.check_config_matches(workdir, config)
  program = importlib.import_module(f'colorjax.{config.program}')
  try:
    program.main(config, workdir)
  except train.Diverged as e:
    print(f'error: {distributed.prefix()}{e}', file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print(f'\n{distributed.prefix()}interrupted: run the same command again to resume from '
          f'the last checkpoint in {workdir}', file=sys.stderr)
    return 130
  return 0


def _prefix():
  """Which process speaks, once several have joined (colorjax.distributed is then loaded)."""
  distributed = sys.modules.get('colorjax.distributed')
  return distributed.prefix() if distributed else ''


def _exit(code):
  """Exit. A process of a multi-process run that fails leaves at once: JAX's exit handler
  would wait at a barrier for processes that are waiting on it in a collective."""
  distributed = sys.modules.get('colorjax.distributed')
  if code and distributed and distributed.prefix():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


if __name__ == '__main__':
  try:
    _exit(main(sys.argv[1:]))
  except UsageError as e:
    print(f'error: {_prefix()}{e}', file=sys.stderr)
    _exit(2)
  except Exception:  # a bug: its traceback, and no process left waiting for this one
    traceback.print_exc()
    _exit(1)
