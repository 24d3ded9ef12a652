"""Fine-tuning (--config.init_from=WORKDIR): a network starts from another run's, an imported
eccv16 (run.py import_weights) or any trained run of the same network: its parameters and
batch statistics, with a fresh optimizer state, at step 0.

Only a run that has saved no checkpoint reads init_from: a resumed fine-tuning run restores
its own checkpoints (bit for bit as an unbroken run), even once init_from has moved.
config.json keeps the field as the record of where the run started.
"""

import pathlib

import ml_collections

from colorjax import families
from colorjax.errors import UsageError
from colorjax.families.spec import NetworkSpec, Options
from colorjax.train import checkpoint, optim, workdirs

# Config fields that shape a network, named when two runs' networks differ.
NETWORK_FIELDS = ('head', 'width')


def refuse(stage, reason: str, prefix: str = ''):
  """For a program that cannot fine-tune: one line when init_from is set."""
  if stage.get('init_from'):
    raise UsageError(f'--config.{prefix}init_from={stage.init_from}: {reason}; leave it out')


def source(config) -> tuple[ml_collections.ConfigDict, pathlib.Path]:
  """(config, workdir) of the run init_from names; one line when it holds none."""
  path = pathlib.Path(config.init_from).expanduser()
  if not (path / workdirs.CONFIG_FILE).is_file():
    raise UsageError(f'--config.init_from={config.init_from} holds no run (no config.json): '
                     'pass the workdir of an imported (run.py import_weights) or trained run')
  try:
    return ml_collections.ConfigDict(workdirs.read_config(path)), path
  except UsageError as e:
    raise UsageError(f'--config.init_from={config.init_from}: {e}') from None


def initializer(config, network: NetworkSpec, name: str | None = None, check_source=None):
  """init(state) for supervised.fit_network: the init_from run's network (`name` picks one of
  several) in place of `network`'s fresh one, checked now, before anything trains;
  `check_source(config, workdir)` adds the family's checks of that run. None without
  init_from, or when `network` has saved a checkpoint (a resume never reads init_from)."""
  if not config.get('init_from') or checkpoint.saved_steps(network.checkpoint_dir):
    return None
  their_config, their_workdir = source(config)
  if their_config.get('program') != config.program:
    raise UsageError(f'--config.init_from={config.init_from} is a {their_config.get("program")} '
                     f'run: a {config.program} network starts only from a {config.program} run')
  if check_source is not None:
    check_source(their_config, their_workdir)
  directory = _checkpoints(config, their_config, their_workdir, name)
  target = network.saved_part()
  _check_shapes(config, their_config, directory, target)

  def init(state):
    saved, step = checkpoint.restore_newest_readable(directory, target, partial=True)
    if step is None:
      raise UsageError(f'--config.init_from={config.init_from}: no checkpoint in {directory} '
                       'can be read (damaged files)')
    tx = optim.make_optimizer(config.optimizer)
    return state.replace(params=saved['params'], batch_stats=saved['batch_stats'],
                         opt_state=tx.init(saved['params']))
  return init


def _checkpoints(config, their_config, their_workdir, name) -> pathlib.Path:
  """The checkpoints/ folder of the init_from run's network `name`; one line without one."""
  try:
    spec = families.network_spec(their_config, their_workdir, Options(network=name))
  except UsageError as e:
    raise UsageError(f'--config.init_from={config.init_from}: {e}') from None
  directory = spec.checkpoint_dir / 'checkpoints'
  if not checkpoint.saved_steps(spec.checkpoint_dir):
    raise UsageError(f'--config.init_from={config.init_from} has no checkpoint in {directory}: '
                     'train that run first, or pass an imported or trained run')
  return directory


def _check_shapes(config, their_config, directory, target):
  """One line naming what differs when the newest checkpoint's network is not this one's."""
  step_dir = directory / str(checkpoint.saved_steps(directory.parent)[0])
  try:
    mismatch = checkpoint.checkpoint_mismatch(step_dir, target, partial=True)
  except Exception as e:
    if not checkpoint.is_damaged(e):
      raise
    raise UsageError(f'--config.init_from={config.init_from}: {step_dir} cannot be read '
                     f'({type(e).__name__}); pass another run') from None
  if mismatch is None:
    return
  differ = [f'{field} {their_config[field]} there, {config[field]} here'
            for field in NETWORK_FIELDS
            if field in config and their_config.get(field, config[field]) != config[field]]
  raise UsageError(f'--config.init_from={config.init_from} holds another network '
                   f"({'; '.join([*differ, mismatch])}): fine-tune with the network "
                   'settings of its config.json')
