"""Experiment configs: the blocks experiments share (data, optimizer, the loop's schedule, the
smoke and real-photo variants), and finding an experiment's get_config() by name or by file.

A config is an ml_collections.ConfigDict, locked once built: a field the experiment did not
define cannot be added later, by an override or by a variant (a typo in an experiment file
is one line, not a silently ignored field).
"""

import ast
import dataclasses
import importlib
import importlib.util
import math
import pathlib
import sys

import ml_collections

from colorjax.errors import UsageError

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / 'experiments'
# Where the real-photo variants (bsds300) read their photos: a folder of JPEGs, given by this
# environment variable (expanded when the source is loaded, so config.json stays portable).
PHOTOS_VARIABLE = 'COLORJAX_BSDS300'


@dataclasses.dataclass(frozen=True)
class Loop:
  """How long a stage trains and what it writes when; steps count batches (micro-batches when
  the optimizer accumulates them). One set of defaults: schedule() writes these fields into an
  experiment's config, from_config reads them back (a config.json saved before a field
  existed gets its default, which keeps the behaviour that run trained with), and
  train.loop.fit takes a Loop."""
  num_steps: int
  steps_per_call: int = 1      # steps one advance call runs (a lax.scan of them)
  log_every: int = 100         # metrics fetched from the devices and logged
  checkpoint_every: int = 1000
  max_to_keep: int = 2         # newest checkpoints kept
  keep_period: int = 0         # >0: every checkpoint at a multiple of it kept too
  eval_every: int = 0          # >0: the state evaluated while training (eval_metrics.jsonl)
  best_metric: str = ''        # keep the best state by this metric (checkpoints_best/)
  best_mode: str = 'max'
  profile_steps: tuple = ()    # (FIRST, LAST): a jax.profiler trace of those steps
  preempt_grace_s: float = 20.0  # SIGTERM/SIGHUP: seconds to finish the step and save it

  @classmethod
  def from_config(cls, config, **given) -> 'Loop':
    """The Loop of a stage config: its fields where present, else the defaults; `given`
    fields (num_steps from epochs, a program's steps_per_call) take precedence."""
    fields = {f.name: config[f.name] for f in dataclasses.fields(cls)
              if f.name in config and f.name not in given}
    return cls(**fields, **given)

  def check(self, evaluates: bool = True):
    """The loop's counts, checked before anything trains. `evaluates`: the program passes
    fit an evaluation (else eval_every and best_metric do not apply)."""
    if self.steps_per_call < 1:
      raise UsageError(f'--config.steps_per_call={self.steps_per_call} must be at least 1')
    for name in ('num_steps', 'checkpoint_every', 'log_every'):
      value = getattr(self, name)
      if value <= 0 or value % self.steps_per_call:
        raise UsageError(f'--config.{name}={value} must be a positive multiple of '
                         f'steps_per_call={self.steps_per_call}')
    eval_every = self.eval_every if evaluates else 0
    if eval_every < 0 or eval_every % self.steps_per_call:
      raise UsageError(f'--config.eval_every={eval_every} must be 0 (off) or a positive '
                       f'multiple of steps_per_call={self.steps_per_call}')
    if self.keep_period < 0 or self.keep_period % self.checkpoint_every:
      raise UsageError(f'--config.keep_period={self.keep_period} must be 0 (off) or a multiple '
                       f'of checkpoint_every={self.checkpoint_every} (milestones are '
                       'checkpoints kept)')
    if evaluates and self.best_metric and not eval_every:
      raise UsageError(f'--config.best_metric={self.best_metric} needs evaluations: set '
                       '--config.eval_every to a number of steps')
    if not 0 < self.preempt_grace_s <= 3600:
      raise UsageError(f'--config.preempt_grace_s={self.preempt_grace_s} must be in (0, 3600] '
                       'seconds, under the grace your cluster gives (often 30)')
    if self.best_mode not in ('max', 'min'):
      raise UsageError(f"--config.best_mode={self.best_mode!r}: use 'max' or 'min'")
    steps = self.profile_steps
    if steps and not (len(steps) == 2 and 0 <= steps[0] <= steps[1] < self.num_steps):
      raise UsageError(f'--config.profile_steps={steps}: give FIRST,LAST steps with 0 <= '
                       f'FIRST <= LAST < num_steps={self.num_steps}, or leave it empty')


def data_config(**overrides) -> ml_collections.ConfigDict:
  """The input fields every experiment that trains on a dataset holds under `config.data`
  (colorjax/data/sources.py and pipeline.py read them)."""
  config = ml_collections.ConfigDict(dict(
      source='samples',    # samples | NAME (tfds) | folder:PATH | npz:PATH (data/sources.py)
      crop=64,             # square crops, train (random) and eval (centre)
      train_short_side=0,  # >0: training images resized to this short side before the crop
                           # (eval always resizes the short side to the crop); 0: as stored
      batch_size=16,       # global; each process reads batch_size / process_count
      eval_batch_size=16,
      seed=0,
      gray='weight',       # nearly gray images: 'weight' (the loss gives them 0) or 'drop'
      gray_threshold=5.0,  # nearly gray: every |a|, |b| within this
      val_percent=10,      # folder: share of files held out for evaluation
      tfds_data_dir='',    # '' = tfds default (TFDS_DATA_DIR or ~/tensorflow_datasets)
      download=True,       # let tfds download datasets that allow it
  ))
  config.lock()
  config.update(overrides)
  return config


def optimizer(name, learning_rate, *, schedule='constant', drops=(), warmup_steps=0,
              decay_steps=0, end_factor=0.0, accumulate_steps=1, **settings):
  """An optimizer block (train/optim.py): optax's `name` with `learning_rate` and any other
  `settings` of it; the rate's schedule, counted in optimizer updates: 'constant', 'steps'
  (x factor from each (update, factor) of `drops` on) or 'warmup_cosine' (linear from 0 over
  warmup_steps, cosine down to end_factor x the rate at decay_steps); and `accumulate_steps`
  micro-batches averaged into each update (optax.MultiSteps)."""
  config = ml_collections.ConfigDict(dict(
      name=name, learning_rate=learning_rate, schedule=schedule, drops=tuple(drops),
      warmup_steps=warmup_steps, decay_steps=decay_steps, end_factor=end_factor,
      accumulate_steps=accumulate_steps, **settings))
  config.lock()
  return config


@dataclasses.dataclass(frozen=True)
class Bound:
  """The finite values a numeric field may take: low to high, each end included or not."""
  low: float = -math.inf
  high: float = math.inf
  open_low: bool = False
  open_high: bool = False

  def holds(self, value) -> bool:
    return ((isinstance(value, int) or math.isfinite(value))
            and (self.low < value if self.open_low else self.low <= value)
            and (value < self.high if self.open_high else value <= self.high))

  def __str__(self):
    if math.isinf(self.high):
      return ('a finite number' if math.isinf(self.low)
              else f"{'>' if self.open_low else '>='} {self.low:g}")
    return (f"in {'(' if self.open_low else '['}{self.low:g}, "
            f"{self.high:g}{')' if self.open_high else ']'}")


MAX_WIDTH = 4.0        # x the published channels: 16x the parameters, ~0.5 billion for Zhang's
MIN_WIDTH = 1 / 32     # 2 channels in the 64 of Zhang's first layers (below, layers of one)
MAX_CHANNELS = 1024    # a field that counts channels itself
MAX_CLASSES = 100_000  # a classifier's outputs (ImageNet-21k has 21,841)
POSITIVE, AT_LEAST_0, AT_LEAST_1 = Bound(0, open_low=True), Bound(0), Bound(1)
FRACTION = Bound(0, 1, open_high=True)
# Any block's field of these names (leaf names, which mean one thing across the experiments)
# takes these values; any other number must be finite. Optimizer blocks hold optax's settings.
BOUNDS = {
    'width': Bound(MIN_WIDTH, MAX_WIDTH), 'channels': Bound(1, MAX_CHANNELS),
    'num_classes': Bound(1, MAX_CLASSES), 'prior_batches': AT_LEAST_1, 'max_to_keep': AT_LEAST_1,
    'seed': AT_LEAST_0, 'seeds': AT_LEAST_0, 'epochs': AT_LEAST_0, 'val_percent': Bound(0, 100),
    'dropout': FRACTION, 'rebalance_mix': Bound(0, 1), 'gray_threshold': AT_LEAST_0,
    'l1_weight': AT_LEAST_0, 'gp_weight': AT_LEAST_0, 'clip': POSITIVE,
    'learning_rate': POSITIVE, 'weight_decay': AT_LEAST_0, 'eps': AT_LEAST_0,
    'b1': FRACTION, 'b2': FRACTION, 'momentum': FRACTION, 'decay': FRACTION,
    'end_factor': Bound(0, 1), 'warmup_steps': AT_LEAST_0, 'decay_steps': AT_LEAST_0,
}
_ANY_NUMBER = Bound()


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_values(config, prefix=''):
  """Refuse numbers no run can mean (a negative learning rate, a width of 0 or 1e9, NaN):
  every program's check() calls this first, so one table covers every experiment (and
  train.optim.check_blocks the names an optimizer block holds)."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      check_values(value, f'{prefix}{key}.')
      continue
    bound = BOUNDS.get(key, _ANY_NUMBER)
    each = key in BOUNDS and isinstance(value, (tuple, list))
    if not all(bound.holds(x) for x in (value if each else (value,)) if _is_number(x)):
      shown = ','.join(map(str, value)) if each else value
      raise UsageError(f"--config.{prefix}{key}={shown} must {'each ' if each else ''}be "
                       f'{bound}')


def loop_fields(*, evaluates: bool = True, **loop) -> dict:
  """Loop's fields at its defaults, `loop` changing any: what an experiment's config holds
  (less the evaluation's when its program does not evaluate)."""
  fields = dataclasses.asdict(Loop(**loop))
  return {k: v for k, v in fields.items() if evaluates or k not in _EVALUATION_FIELDS}


_EVALUATION_FIELDS = ('eval_every', 'best_metric', 'best_mode')


def schedule(config, *, num_steps=0, epochs=None, eval_batches=100, report_images=6,
             eval_every_batches=4, **loop):
  """The length, logging, checkpoint and evaluation fields of a training stage: the fields of
  Loop (its defaults, `loop` changing any; steps_per_call is a program's own) and the
  evaluation's. `epochs` (> 0), for programs that count in epochs, overrides `num_steps`.
  eval_every > 0 evaluates the state on `eval_every_batches` eval batches every that many
  steps; the final evaluation scores `eval_batches` batches and shows `report_images` images.
  `init_from` ('' = fresh weights) is the workdir of a run whose network this one starts from
  (train/init_from.py: fine-tuning)."""
  fields = loop_fields(num_steps=num_steps, **loop)
  del fields['steps_per_call']
  config.update(fields, eval_batches=eval_batches, report_images=report_images,
                eval_every_batches=eval_every_batches, init_from='')
  if epochs is not None:
    config.epochs = epochs
  return config


def smoke(config, *, crop, num_steps, **changes):
  """Shrink a stage to a smoke run: the bundled photos, batches of 8, `num_steps` steps with
  one checkpoint at the end, one eval batch; `changes` set any other field."""
  config.data.update(source='samples', crop=crop, batch_size=8, eval_batch_size=8)
  if 'epochs' in config:
    config.epochs = 0
  config.update(dict(num_steps=num_steps, checkpoint_every=num_steps, eval_batches=1,
                     report_images=4) | changes)
  return config


def real_photos(config, *, crop, num_steps, batch_size=16, **changes):
  """Shrink a stage to a CPU-sized run on real photos: the folder $COLORJAX_BSDS300 (the 300
  BSDS500 photos; another folder: --config.data.source=folder:PATH), 10% held out by file
  name (37 of the 300). Training images are resized to the crop's short side first, so the
  random crops show the scene at the scale the held-out centre crops do; every held-out
  photo is evaluated."""
  config.data.update(source=f'folder:${PHOTOS_VARIABLE}', crop=crop, train_short_side=crop,
                     batch_size=batch_size, eval_batch_size=batch_size)
  if 'epochs' in config:
    config.epochs = 0
  config.update(dict(num_steps=num_steps, checkpoint_every=max(num_steps // 4, 1),
                     eval_batches=1000, report_images=6) | changes)
  return config


def list_experiments() -> dict[str, str]:
  """name -> first line of the module docstring, read without importing the module."""
  experiments = {}
  for path in sorted(EXPERIMENTS_DIR.glob('*.py')):
    if path.name.startswith('_'):
      continue
    doc = ast.get_docstring(ast.parse(path.read_text())) or ''
    experiments[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ''
  return experiments


def _make_experiments_importable():
  """The package `experiments` lives beside colorjax/ in the checkout, which is not on
  sys.path when the `colorjax` command runs."""
  root = str(EXPERIMENTS_DIR.parent)
  if root not in sys.path:
    sys.path.append(root)


def _experiment_module(name: str):
  _make_experiments_importable()
  return importlib.import_module(f'experiments.{name}')


def variants(name: str) -> tuple[str, ...]:
  """The variants an experiment module names in VARIANTS (e.g. zhang_softmax: smoke)."""
  return tuple(getattr(_experiment_module(name), 'VARIANTS', ()))


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'NAME' or 'NAME:VARIANT' (e.g. zhang_softmax:smoke): get_config() or get_config(VARIANT)."""
  name, _, variant = spec.partition(':')
  known = list_experiments()
  if name not in known:
    raise UsageError(f"unknown experiment '{name}'; choose one of: {', '.join(known)} "
                     '(python run.py --list describes them)')
  return _get_config(_experiment_module(name), f"experiment '{name}'", variant)


def split_config_file(spec: str) -> tuple[pathlib.Path, str]:
  """'PATH.py[:VARIANT]' -> (path, variant or '')."""
  path, variant = spec, ''
  if ':' in pathlib.Path(spec).name:
    path, _, variant = spec.rpartition(':')
  return pathlib.Path(path).expanduser(), variant


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """'PATH.py' or 'PATH.py:VARIANT': a config module outside experiments/, with get_config()
  as an experiment module has."""
  path, variant = split_config_file(spec)
  if path.suffix != '.py' or not path.is_file():
    raise UsageError(f"--config={spec}: no config module '{path}'; pass PATH.py[:VARIANT] of a "
                     'Python file with get_config()')
  _make_experiments_importable()  # a config module may build on an experiment's
  module_spec = importlib.util.spec_from_file_location(f'_colorjax_config_{path.stem}', path)
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[module_spec.name] = module  # dataclasses and pickling look modules up here
  module_spec.loader.exec_module(module)
  if not callable(getattr(module, 'get_config', None)):
    raise UsageError(f'--config={spec}: {path} defines no get_config(); give it one that '
                     'returns an ml_collections.ConfigDict')
  return _get_config(module, str(path), variant)


def _get_config(module, what: str, variant: str) -> ml_collections.ConfigDict:
  """The module's config (with `variant`), locked. A variant may change the fields of the
  base config, never add one: a field only the variant has is a typo."""
  known = getattr(module, 'VARIANTS', ())
  if variant and variant not in known:
    raise UsageError(f"{what} has no variant '{variant}'"
                     + (f"; variants: {', '.join(known)}" if known else ''))
  try:
    config = module.get_config(variant) if variant else module.get_config()
    added = _added_fields(config, module.get_config()) if variant else []
  except (AttributeError, KeyError) as e:  # a locked block refused a field
    refusal = str(e.args[0] if e.args else e).split(' Other fields present')[0]
    raise UsageError(f'{what}: {refusal}; fix the field name in its get_config()') from None
  if added:
    raise UsageError(f"{what} variant '{variant}' adds field(s) {', '.join(added)} that its "
                     'base config lacks: a typo? Define every field in the base config')
  misspelt = _misspelt_field(config)
  if misspelt:
    raise UsageError(f'{what}: {misspelt}: a typo? Fix the field name in its get_config()')
  config.lock()
  return config


def _misspelt_field(config, prefix='') -> str | None:
  """A field one keystroke from another of its block (`chekpoint_every` set beside
  `checkpoint_every`), or in a training stage from a Loop field it lacks: a typo in
  get_config adds a field no code reads, where a variant's would be refused."""
  names = set(config.keys())
  if 'num_steps' in names:
    names |= {f.name for f in dataclasses.fields(Loop)}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      found = _misspelt_field(value, f'{prefix}{key}.')
      if found:
        return found
    near = sorted(n for n in names if n != key and _one_edit_apart(key, n))
    if near and key not in {f.name for f in dataclasses.fields(Loop)}:
      return f"field {prefix}{key} is one keystroke from {prefix}{near[0]}"
  return None


def _one_edit_apart(a: str, b: str) -> bool:
  """One character inserted, deleted, replaced or two neighbours swapped. A plural
  (temperatures) and a numbered sibling (b1, b2) are fields of their own."""
  a, b = sorted((a, b), key=len)
  if b == a + 's':
    return False
  if len(b) == len(a) + 1:
    return any(b[:i] + b[i + 1:] == a for i in range(len(b)))
  differ = [i for i in range(len(a)) if a[i] != b[i]] if len(a) == len(b) else []
  if len(differ) == 1:
    return not (a[differ[0]].isdigit() and b[differ[0]].isdigit())
  return (len(differ) == 2 and differ[1] == differ[0] + 1
          and (a[differ[0]], a[differ[1]]) == (b[differ[1]], b[differ[0]]))


def _added_fields(variant, base, prefix='') -> list[str]:
  """Fields of `variant` that `base` lacks, in blocks that keep all of base's fields: a block
  that lacks one of them was replaced as a whole (another optimizer), not added to."""
  added = []
  for key, value in variant.items():
    if key not in base:
      added.append(f'{prefix}{key}')
    elif isinstance(value, ml_collections.ConfigDict) and isinstance(
        base[key], ml_collections.ConfigDict) and set(base[key]) <= set(value):
      added += _added_fields(value, base[key], f'{prefix}{key}.')
  return added


def field_names(config, prefix='', blocks=True):
  """The dotted names of a config's fields, and of its blocks (e.g. 'optimizer') too."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      if blocks:
        yield f'{prefix}{key}'
      yield from field_names(value, f'{prefix}{key}.', blocks)
    else:
      yield f'{prefix}{key}'
