"""The released Zhang et al. networks as colorjax runs (`run.py import_weights`):

  python run.py import_weights colorization_release_v2-9b330a0b.pth --workdir=runs/eccv16
  python run.py import_weights siggraph17-df00044c.pth --workdir=runs/siggraph17
  python run.py import_weights inception_v3_google-1a9a5a14.pth   # FID, for every run

Which of the two a file is, its state_dict's keys say: eccv16 (Colorful Image Colorization,
2016) has a 4-D `model_out.weight`, siggraph17 (Real-Time User-Guided Image Colorization,
2017) a `model8up` transposed conv. Either becomes a workdir that `run.py colorize`,
colorjax.load and `run.py evaluate` use: config.json and an Orbax checkpoint at step 0.
eccv16 is a zhang_softmax run with the network's own bins (bins.npy, read from
`model_out.weight` x 110), which training can continue from (fine-tuning); siggraph17 is a
run of the siggraph17 family (families/siggraph17.py; colorjax does not train it), whose
unused model_class head (529 classes) is accepted and left out.

Layer for layer: PyTorch convs are OIHW, Flax's HWIO; a transposed conv's kernel is
IOHW and is flipped in space, because lax.conv_transpose does not flip it; the first conv
sees (L - 50) / 100 (and siggraph17's hint ab / 110) there, L - 50 (and ab) here, so its
kernel is divided by those scales; BatchNorm's running statistics become batch_stats. The
published eccv16 forward decodes with a plain softmax (the mean of the bins' ab under it,
`model_out`): the imported run's `temperature` is 1, and `--temperature=T` anneals those
logits as for any softmax run.

Reading the file needs PyTorch (`pip install -e .[torch]`), imported by this command only,
with `weights_only=True`: the file's pickle can build tensors and nothing else.
"""

import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import traverse_util

from colorjax import configs, optional
from colorjax.errors import UsageError
from colorjax.models import inception
from colorjax.models.siggraph17 import DECODER, SiggraphNet
from colorjax.models.zhang import BLOCKS, ZhangNet
from colorjax.train import checkpoint, optim, workdirs
from colorjax.train.train_state import TrainState

BINS_FILE = 'bins.npy'
AB_SCALE = 110.0  # the released networks' ab unit: eccv16's model_out weights are bins / 110
L_SCALE = 100.0   # ... and their L input is (L - 50) / 100


@dataclasses.dataclass(frozen=True)
class Release:
  """One released network's state_dict: how its keys name colorjax's layers."""
  name: str
  file: str                # the published file
  marker: str              # a key that this network's state_dict alone holds
  names: dict              # colorjax parameter path -> state_dict prefix, in the network's order
  transposed: frozenset    # the paths of its transposed convs
  input_scale: tuple       # the published first conv's inputs are colorjax's divided by these


def _stack_names(path: str, prefix: str, convs: int, first: int = 0) -> dict:
  """A ConvStack's parameter paths -> indices of its nn.Sequential (conv, ReLU, ...,
  BatchNorm), which starts with `first` other layers (siggraph17's decoder: a ReLU)."""
  names = {f'{path}/Conv_{i}': f'{prefix}.{first + 2 * i}' for i in range(convs)}
  names[f'{path}/BatchNorm_0'] = f'{prefix}.{first + 2 * convs}'
  return names


def _eccv16() -> Release:
  names = {}
  for block, (_, convs, _, _) in enumerate(BLOCKS):
    names |= _stack_names(f'ConvStack_{block}', f'model{block + 1}', convs)
  names['ConvTranspose_0'] = 'model8.0'
  for i in range(3):
    names[f'Conv_{i}'] = f'model8.{2 * (i + 1)}'
  return Release('eccv16', 'colorization_release_v2-9b330a0b.pth', 'model_out.weight', names,
                 frozenset({'ConvTranspose_0'}), (L_SCALE,))


def _siggraph17() -> Release:
  names = {}
  for block, (_, convs, _, _) in enumerate(BLOCKS, 1):
    names |= _stack_names(f'model{block}', f'model{block}', convs)
  for block, _, convs, source in DECODER:
    names[f'model{block}up'] = f'model{block}up.0'
    names[f'model{source}short{block}'] = f'model{source}short{block}.0'
    if convs:
      names |= _stack_names(f'model{block}', f'model{block}', convs, first=1)
  names['model10'] = 'model10.1'
  names['model_out'] = 'model_out.0'
  return Release('siggraph17', 'siggraph17-df00044c.pth', 'model8up.0.weight', names,
                 frozenset(f'model{block}up' for block, *_ in DECODER),
                 (L_SCALE, AB_SCALE, AB_SCALE, 1.0))


ECCV16, SIGGRAPH17 = _eccv16(), _siggraph17()
RELEASES = (ECCV16, SIGGRAPH17)
FILES = ', '.join(f'{r.name} ({r.file})' for r in RELEASES) + \
    f' or Inception-v3 for FID ({inception.FILE})'
FID_FILE = 'inception_v3_fid.npz'


def read_state_dict(path: pathlib.Path) -> dict[str, np.ndarray]:
  """The .pth file's tensors as float32 arrays; one line if it cannot be one."""
  try:
    import torch
  except ImportError:
    raise UsageError('reading .pth weights needs PyTorch: pip install torch (or pip install '
                     '-e .[torch]), then run import_weights again') from None
  if not path.is_file():
    raise UsageError(f'{path} not found: pass the path of the downloaded .pth file')
  optional.keep_triton_from_tensorflow()
  try:
    state_dict = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # truncated, not a pickle, or pickled objects beyond tensors
    raise UsageError(f'{path} is not a PyTorch state_dict ({type(e).__name__}); pass the '
                     f'file of {FILES}') from None
  if not isinstance(state_dict, dict) or not all(
      isinstance(v, torch.Tensor) for v in state_dict.values()):
    raise UsageError(f'{path} holds no state_dict of tensors; pass the file of {FILES}')
  return {k: v.detach().float().numpy() for k, v in state_dict.items()
          if not k.endswith('num_batches_tracked')}


def identify(state_dict: dict, path) -> Release:
  """Which released network a state_dict is, by the key that only it holds; one line if
  neither."""
  for release in RELEASES:
    if release.marker in state_dict:
      return release
  markers = ', '.join(f"'{r.marker}' ({r.name})" for r in RELEASES)
  raise UsageError(f"{path} is none of the released networks: its state_dict has no {markers} "
                   f"nor '{inception.MARKER}' (Inception-v3); pass the file of {FILES}")


def _expected_shapes(variables, release: Release) -> dict[str, tuple]:
  """state_dict key -> shape, from the Flax network's own variables."""
  shapes = {}
  for path, torch_name in release.names.items():
    node = variables['params']
    for part in path.split('/'):
      node = node[part]
    if 'BatchNorm' in path:
      for key in ('weight', 'bias', 'running_mean', 'running_var'):
        shapes[f'{torch_name}.{key}'] = node['scale'].shape
      continue
    kh, kw, cin, cout = node['kernel'].shape
    transposed = path in release.transposed
    shapes[f'{torch_name}.weight'] = (cin, cout, kh, kw) if transposed else (cout, cin, kh, kw)
    shapes[f'{torch_name}.bias'] = (cout,)
  return shapes


def _variables(state_dict, release: Release, model, extra_shapes=None) -> tuple[dict, dict]:
  """(params, batch_stats) of `model` from `state_dict`; one line naming the first key or
  shape that is not the published network's."""
  sample = np.zeros((1, 64, 64, len(release.input_scale)), np.float32)
  shapes = _expected_shapes(jax.eval_shape(model.init, jax.random.PRNGKey(0), sample), release)
  shapes |= extra_shapes or {}
  for key in sorted(set(shapes) | set(state_dict)):
    if shapes.get(key) != (state_dict[key].shape if key in state_dict else None):
      found = state_dict[key].shape if key in state_dict else 'missing'
      raise UsageError(f"not a {release.name} state_dict: '{key}' is {found}, the published "
                       f"network has {shapes.get(key, 'no such key')}; pass {release.file}")
  params, batch_stats = {}, {}
  for path, name in release.names.items():
    *parents, leaf = path.split('/')
    target_params, target_stats = params, batch_stats
    for part in parents:
      target_params = target_params.setdefault(part, {})
      target_stats = target_stats.setdefault(part, {})
    weight = state_dict[f'{name}.weight']
    if leaf.startswith('BatchNorm'):
      target_params[leaf] = {'scale': weight, 'bias': state_dict[f'{name}.bias']}
      target_stats[leaf] = {'mean': state_dict[f'{name}.running_mean'],
                            'var': state_dict[f'{name}.running_var']}
      continue
    if path in release.transposed:
      kernel = np.flip(weight, (2, 3)).transpose(2, 3, 0, 1)  # IOHW -> flipped HWIO
    else:
      kernel = weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if name == 'model1.0':
      kernel = kernel / np.asarray(release.input_scale, np.float32)[:, None]
    target_params[leaf] = {'kernel': np.ascontiguousarray(kernel),
                           'bias': state_dict[f'{name}.bias']}
  return params, batch_stats


def eccv16_variables(state_dict: dict[str, np.ndarray]) -> tuple[dict, dict, np.ndarray]:
  """(params, batch_stats, bins) of a ZhangNet from an eccv16 state_dict."""
  weight = state_dict['model_out.weight']
  if weight.ndim != 4:
    raise UsageError(f"not an eccv16 state_dict: 'model_out.weight' is {weight.shape}, the "
                     f'published network has 2 x Q x 1 x 1; pass {ECCV16.file}')
  bins = weight[:, :, 0, 0].T * AB_SCALE
  params, batch_stats = _variables(state_dict, ECCV16, ZhangNet(len(bins)),
                                   {'model_out.weight': (2, len(bins), 1, 1)})
  return params, batch_stats, bins.astype(np.float32)


def siggraph17_variables(state_dict: dict[str, np.ndarray]) -> tuple[dict, dict]:
  """(params, batch_stats) of a SiggraphNet from a siggraph17 state_dict; its model_class
  head, which the published forward never uses, is left out."""
  used = {k: v for k, v in state_dict.items() if not k.startswith('model_class.')}
  return _variables(used, SIGGRAPH17, SiggraphNet())


def imported_config():
  """zhang_softmax's config, decoding as the published forward does (temperature 1) with
  the network's own bins."""
  config = configs.load_config('zhang_softmax')
  config.bins = BINS_FILE  # in the workdir
  config.temperature = 1.0
  return config


def siggraph17_config():
  """A siggraph17 run's config: its family, and the fields the families read of any run."""
  return ml_collections.ConfigDict({'program': 'siggraph17', 'release': SIGGRAPH17.file,
                                    'compute_dtype': 'float32', 'seed': 0})


def import_file(path: pathlib.Path, workdir: pathlib.Path | None) -> str:
  """`run.py import_weights`: a released colorization network becomes the run `workdir`;
  torchvision's Inception-v3 becomes the FID weights of every run's evaluation
  (fid_weights_file). What was done, in one line."""
  if workdir is not None:
    _check_new_workdir(workdir)  # before a long read
  state_dict = read_state_dict(path)
  if inception.MARKER in state_dict:
    if workdir is not None:
      raise UsageError(f'{path} is Inception-v3, for FID, not a colorization network: leave '
                       '--workdir out (its weights go to one place per user)')
    written = import_inception(state_dict, fid_weights_file())
    return (f'imported {path} (Inception-v3, for FID) into {written}: python run.py evaluate '
            '--workdir=DIR --protocol=val5k now reports FID')
  if workdir is None:
    raise UsageError(f'{path} is a colorization network: pass --workdir=DIR, the run to write')
  release = import_release(state_dict, path, workdir)
  return (f'imported {path} (the released {release.name} network) into {workdir}: '
          f'python run.py colorize --workdir={workdir} PHOTO...')


def _check_new_workdir(workdir: pathlib.Path):
  workdirs.check_folder(workdir)
  if workdir.is_dir() and any(workdir.iterdir()):
    raise UsageError(f'{workdir} is not empty: pass a new --workdir for the imported run')


def import_release(state_dict: dict, path, workdir: pathlib.Path) -> Release:
  """Write the workdir of an imported network; which of the releases it is."""
  _check_new_workdir(workdir)
  release = identify(state_dict, path)
  if release is ECCV16:
    params, batch_stats, bins = eccv16_variables(state_dict)
    config, files = imported_config(), {BINS_FILE: bins}
    # The state a zhang_softmax run trains (train_state.init_state): fine-tuning resumes it.
    opt_state = optim.make_optimizer(config.optimizer).init(params)
  else:
    params, batch_stats = siggraph17_variables(state_dict)
    config, files = siggraph17_config(), {}
    opt_state = optax.EmptyState()  # colorjax does not train siggraph17
  workdirs.acquire(workdir)
  workdirs.bind(workdir, config)
  for name, array in files.items():
    np.save(workdir / name, array)
  _, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                     batch_stats=batch_stats, key=state_key)
  checkpoints = checkpoint.Checkpoints(workdir, max_to_keep=None)
  checkpoints.save(0, state)
  checkpoints.close()
  return release


def import_weights(path: pathlib.Path, workdir: pathlib.Path) -> pathlib.Path:
  """import_release for a notebook: the imported run's workdir, for colorjax.load."""
  _check_new_workdir(workdir)
  import_release(read_state_dict(pathlib.Path(path)), path, workdir)
  return workdir


def fid_weights_file() -> pathlib.Path:
  """Where import_weights keeps Inception-v3 for FID: one file per user, which every run's
  `evaluate --protocol` reads."""
  cache = os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache'
  return pathlib.Path(cache) / 'colorjax' / FID_FILE


def import_inception(state_dict: dict, destination: pathlib.Path) -> pathlib.Path:
  """torchvision's Inception-v3 state_dict -> an .npz of its Flax variables at `destination`,
  which then needs no PyTorch to read; written whole or not at all."""
  flat = traverse_util.flatten_dict(inception.variables_from_torchvision(state_dict), sep='/')
  destination.parent.mkdir(parents=True, exist_ok=True)
  partial = destination.with_name(f'{destination.stem}.partial.npz')
  np.savez(partial, **flat)
  os.replace(partial, destination)
  return destination


def fid_variables(path=None):
  """Inception-v3's variables for FID from `path` (torchvision's .pth, or the .npz that
  import_weights writes), else from fid_weights_file() where import_weights wrote it, else
  None. One line for a file that is neither."""
  if path is None:
    if not fid_weights_file().is_file():
      return None
    path = fid_weights_file()
  path = pathlib.Path(path)
  if path.suffix == '.pth':
    state_dict = read_state_dict(path)
    if inception.MARKER not in state_dict:
      raise UsageError(f"{path} is not torchvision's Inception-v3 (no '{inception.MARKER}'): "
                       f'pass --fid_weights={inception.FILE}')
    return inception.variables_from_torchvision(state_dict)
  expected = traverse_util.flatten_dict(inception.abstract_variables(), sep='/')
  try:
    with np.load(path) as saved:
      flat = {key: saved[key] for key in saved.files}
  except Exception as e:  # missing, truncated, not an .npz
    raise UsageError(f'{path} cannot be read as Inception-v3 weights ({type(e).__name__}): '
                     f'pass {inception.FILE} (--fid_weights=PATH), or import it again') from None
  shapes = lambda tree: {k: tuple(v.shape) for k, v in tree.items()}
  if shapes(flat) != shapes(expected):
    raise UsageError(f'{path} does not hold the Inception-v3 weights colorjax computes FID '
                     f'with: import {inception.FILE} again (python run.py import_weights FILE)')
  return traverse_util.unflatten_dict(flat, sep='/')
