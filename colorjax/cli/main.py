"""The command line: `python run.py` and the `colorjax` command are this module.

  colorjax --experiment=NAME[:VARIANT] [--config.KEY=VALUE ...] [--workdir=DIR]
  colorjax --config=PATH.py[:VARIANT] ...     a config module outside experiments/
  colorjax --list | --print_config | colorize --help

Running the same command again resumes from the latest checkpoint in the workdir; a finished
run only rewrites its report. A user's mistake is one line on stderr and exit status 2.
"""

import argparse
import errno
import importlib
import os
import pathlib
import signal
import sys
import traceback

from colorjax import configs, programs
from colorjax.cli import flags
from colorjax.errors import ArgumentParser, UsageError

USAGE = ('python run.py --experiment=NAME[:VARIANT] | --config=PATH.py[:VARIANT] '
         '[--config.KEY=VALUE ...] [--workdir=DIR] [--print_config] | --list | '
         '{colorize,evaluate,import_weights} --help')


def experiment_lines() -> list[str]:
  """One line per experiment and per variant, with the experiment's description."""
  lines = []
  for name, description in configs.list_experiments().items():
    lines.append(f'  {name:24s} {description}')
    lines += [f'  {name}:{variant}' for variant in configs.variants(name)]
  return lines


def _parse_args(argv):
  parser = ArgumentParser(
      prog='python run.py', usage=USAGE, allow_abbrev=False,
      description='Run a colorjax experiment (train, evaluate, report), or colorize files '
                  'with a trained run (python run.py colorize --help).',
      epilog='experiments:\n' + '\n'.join(experiment_lines()),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--experiment', help='an experiment module in experiments/, with an '
                      'optional variant: zhang_softmax:smoke')
  parser.add_argument('--config', dest='config_file', metavar='PATH.py[:VARIANT]',
                      help='a config module outside experiments/ (with get_config())')
  parser.add_argument('--workdir', help='where checkpoints and the report go '
                      '(default runs/<experiment>[/<variant>])')
  parser.add_argument('--list', action='store_true', help='list the experiments and exit')
  parser.add_argument('--print_config', action='store_true',
                      help='print the config, overrides applied, and exit')
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
  if not args.list and bool(args.experiment) == bool(args.config_file):
    parser.error('pass one of --experiment=NAME and --config=PATH.py')
  return args, overrides


def _load(args, overrides):
  """(config with the overrides applied, its default workdir runs/<name>[/<variant>])."""
  if args.experiment:
    name, parts = args.experiment, args.experiment.split(':')
    config = configs.load_config(args.experiment)
  else:
    path, variant = configs.split_config_file(args.config_file)
    name, parts = args.config_file, [path.stem] + ([variant] if variant else [])
    config = configs.load_config_file(args.config_file)
  return flags.apply_overrides(config, overrides, name), pathlib.Path('runs', *parts)


_COMMANDS = ('colorize', 'evaluate', 'import_weights')  # the rest of argv: a training


def main(argv) -> int:
  if argv[:1] in [[c] for c in _COMMANDS]:
    command = importlib.import_module(f'colorjax.cli.{argv[0]}')
    return command.main(argv[1:])
  args, overrides = _parse_args(argv)
  if args.list:
    print('\n'.join(line[2:] for line in experiment_lines()))
    return 0
  config, default_workdir = _load(args, overrides)
  if args.print_config:
    print(config)
    return 0
  program = programs.load(config.get('program', ''))
  workdir = pathlib.Path(args.workdir or default_workdir)
  # Heavy imports only once the command line is known to be valid.
  from colorjax import distributed
  from colorjax.train import loop, workdirs
  distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  program.check(config)  # every mistake a config can hold, before anything is written
  workdirs.check(workdir, config)  # a refused command writes nothing, not even a lock
  if distributed.is_main():
    workdirs.acquire(workdir)
  workdirs.bind(workdir, config)  # again, now that no other run can bind it
  # loop.fit saves first; elsewhere they stop at once. Put back after: main may run in a
  # notebook's or a test's process.
  previous = {signum: signal.signal(signum, _preempted) for signum in loop.PREEMPTION_SIGNALS}
  try:
    program.main(config, workdir)
  except loop.Diverged as e:
    print(f'error: {distributed.prefix()}{e}', file=sys.stderr)
    return 1
  except loop.Preempted as e:
    print(f'{distributed.prefix()}{e} from the last checkpoint in {workdir}', file=sys.stderr)
    _leave(128 + e.signum)  # the status a shell gives a process that this signal ended
  except KeyboardInterrupt:
    print(f'\n{distributed.prefix()}interrupted: run the same command again to resume from '
          f'the last checkpoint in {workdir}', file=sys.stderr)
    _leave(130)  # at once: the input pipeline's threads would hold the exit for seconds
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  return 0


def _preempted(signum, frame):
  """SIGTERM or SIGHUP outside loop.fit (the prior, the final evaluation): stop at once."""
  from colorjax.train import loop
  raise loop.Preempted(signum)


def _prefix():
  """Which process speaks, once several have joined (colorjax.distributed is then loaded)."""
  distributed = sys.modules.get('colorjax.distributed')
  return distributed.prefix() if distributed else ''


def _leave(code):
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def _exit(code):
  """Exit. A process of a multi-process run that fails leaves at once: JAX's exit handler
  would wait at a barrier for processes that are waiting on it in a collective."""
  distributed = sys.modules.get('colorjax.distributed')
  if code and distributed and distributed.prefix():
    _leave(code)
  sys.exit(code)


# errno -> what a failed write says of the storage, and the fix.
_STORAGE_FAULTS = {errno.ENOSPC: ('the disk is full', 'free space'),
                   errno.EDQUOT: ('the disk quota is exceeded', 'free space'),
                   errno.EROFS: ('the file system is read-only', 'make it writable')}


def _storage_fault(error: BaseException, trains: bool = True) -> str | None:
  """The one line for a storage fault anywhere in the exception's chain (Orbax wraps its
  writers' errors), else None. `trains`: the command was a training, which resumes."""
  while error is not None:
    code = getattr(error, 'errno', None)
    if code not in _STORAGE_FAULTS and 'No space left on device' in str(error):
      code = errno.ENOSPC
    if code in _STORAGE_FAULTS:
      what, fix = _STORAGE_FAULTS[code]
      where = f': {error.filename}' if getattr(error, 'filename', None) else ''
      resumes = (': it resumes from the last complete checkpoint, which a failed save leaves '
                 'intact') if trains else ''
      return (f'{what} ({error.__class__.__name__}{where}); {fix} and run the same command '
              f'again{resumes}')
    error = error.__cause__ or error.__context__
  return None


def run(argv=None):
  """The entry point of `python run.py` and of the `colorjax` command."""
  try:
    code = main(sys.argv[1:] if argv is None else argv)
    if argv is None and sys.argv[1:2] in (['colorize'], ['evaluate']):
      _leave(code)  # at once: its files are written; exit handlers would take 0.2 s more
    _exit(code)
  except UsageError as e:
    print(f'error: {_prefix()}{e}', file=sys.stderr)
    _exit(2)
  except Exception as e:
    args = sys.argv[1:] if argv is None else argv
    fault = _storage_fault(e, trains=args[:1] not in [[c] for c in _COMMANDS])
    if fault:  # and at once: JAX's and Orbax's exit handlers would wait on the failed save
      print(f'error: {_prefix()}{fault}', file=sys.stderr)
      _leave(2)
    distributed = sys.modules.get('colorjax.distributed')
    broken = distributed and distributed.collective_failed(e)
    if broken:
      print(f'error: {_prefix()}{broken}', file=sys.stderr)
      _leave(1)
    traceback.print_exc()  # a bug: its traceback, and no process left waiting for this one
    _exit(1)
