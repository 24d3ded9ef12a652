"""The released Zhang et al. network as a colorjax run (`run.py import_weights`):

  python run.py import_weights colorization_release_v2-9b330a0b.pth --workdir=runs/eccv16

The "eccv16" PyTorch state_dict (richzhang/colorization) becomes a workdir like any trained
zhang_softmax run: config.json, an Orbax checkpoint at step 0 and the network's bins
(bins.npy, read from `model_out.weight` x 110), which `run.py colorize`, colorjax.load and
`run.py evaluate` use, and which training can continue from (fine-tuning).

Layer for layer: PyTorch convs are OIHW, Flax's HWIO; the transposed conv's kernel is
IOHW and is flipped in space, because lax.conv_transpose does not flip it; the first conv
sees (L - 50) / 100 there and L - 50 here, so its kernel is divided by 100; BatchNorm's
running statistics become batch_stats. The published forward decodes with a plain softmax
(the mean of the bins' ab under it, `model_out`): the imported run's `temperature` is 1, and
`--temperature=T` anneals those logits as for any softmax run.

Reading the file needs PyTorch (`pip install -e .[torch]`), imported by this command only,
with `weights_only=True`: the file's pickle can build tensors and nothing else.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import configs, optional
from colorjax.errors import UsageError
from colorjax.models.zhang import BLOCKS, ZhangNet
from colorjax.train import checkpoint, optim, workdirs
from colorjax.train.train_state import TrainState

BINS_FILE = 'bins.npy'
AB_SCALE = 110.0  # the released network's ab unit: its model_out weights are bins / 110
L_SCALE = 100.0   # ... and its input is (L - 50) / 100


def _torch_names():
  """colorjax parameter path -> eccv16 state_dict prefix, in the network's order."""
  names = {}
  for block, (_, convs, _, _) in enumerate(BLOCKS):
    for i in range(convs):
      names[f'ConvStack_{block}/Conv_{i}'] = f'model{block + 1}.{2 * i}'
    names[f'ConvStack_{block}/BatchNorm_0'] = f'model{block + 1}.{2 * convs}'
  names['ConvTranspose_0'] = 'model8.0'
  for i in range(3):
    names[f'Conv_{i}'] = f'model8.{2 * (i + 1)}'
  return names


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
                     'eccv16 file, colorization_release_v2-9b330a0b.pth') from None
  if not isinstance(state_dict, dict) or not all(
      isinstance(v, torch.Tensor) for v in state_dict.values()):
    raise UsageError(f'{path} holds no state_dict of tensors; pass the eccv16 .pth file')
  return {k: v.detach().float().numpy() for k, v in state_dict.items()
          if not k.endswith('num_batches_tracked')}


def _expected_shapes(variables) -> dict[str, tuple]:
  """eccv16 key -> shape, from the Flax network's own variables."""
  shapes = {}
  for path, torch_name in _torch_names().items():
    node = variables['params']
    for part in path.split('/'):
      node = node[part]
    if 'BatchNorm' in path:
      for key in ('weight', 'bias', 'running_mean', 'running_var'):
        shapes[f'{torch_name}.{key}'] = node['scale'].shape
      continue
    kh, kw, cin, cout = node['kernel'].shape
    transposed = path.startswith('ConvTranspose')
    shapes[f'{torch_name}.weight'] = (cin, cout, kh, kw) if transposed else (cout, cin, kh, kw)
    shapes[f'{torch_name}.bias'] = (cout,)
  return shapes


def eccv16_variables(state_dict: dict[str, np.ndarray]) -> tuple[dict, dict, np.ndarray]:
  """(params, batch_stats, bins) of a ZhangNet from an eccv16 state_dict; one line naming
  the first key or shape that is not the published network's."""
  if 'model_out.weight' not in state_dict or state_dict['model_out.weight'].ndim != 4:
    raise UsageError("not an eccv16 state_dict: no 'model_out.weight' (2 x Q x 1 x 1); pass "
                     'colorization_release_v2-9b330a0b.pth')
  bins = state_dict['model_out.weight'][:, :, 0, 0].T * AB_SCALE
  model = ZhangNet(len(bins))
  shapes = _expected_shapes(jax.eval_shape(model.init, jax.random.PRNGKey(0),
                                           np.zeros((1, 64, 64, 1), np.float32)))
  shapes['model_out.weight'] = (2, len(bins), 1, 1)
  for key in sorted(set(shapes) | set(state_dict)):
    if shapes.get(key) != (state_dict[key].shape if key in state_dict else None):
      found = state_dict[key].shape if key in state_dict else 'missing'
      raise UsageError(f"not an eccv16 state_dict: '{key}' is {found}, the published network "
                       f"has {shapes.get(key, 'no such key')}; pass the eccv16 .pth file")
  params, batch_stats = {}, {}
  for path, name in _torch_names().items():
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
    if leaf.startswith('ConvTranspose'):
      kernel = np.flip(weight, (2, 3)).transpose(2, 3, 0, 1)  # IOHW -> flipped HWIO
    else:
      kernel = weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if name == 'model1.0':
      kernel = kernel / L_SCALE
    target_params[leaf] = {'kernel': np.ascontiguousarray(kernel),
                           'bias': state_dict[f'{name}.bias']}
  return params, batch_stats, bins.astype(np.float32)


def imported_config():
  """zhang_softmax's config, decoding as the published forward does (temperature 1) with
  the network's own bins."""
  config = configs.load_config('zhang_softmax')
  config.bins = BINS_FILE  # in the workdir
  config.temperature = 1.0
  return config


def import_weights(path: pathlib.Path, workdir: pathlib.Path) -> pathlib.Path:
  """Write the workdir of an imported eccv16 network; its path."""
  workdirs.check_folder(workdir)  # before a long read
  if workdir.is_dir() and any(workdir.iterdir()):
    raise UsageError(f'{workdir} is not empty: pass a new --workdir for the imported run')
  params, batch_stats, bins = eccv16_variables(read_state_dict(path))
  config = imported_config()
  workdirs.acquire(workdir)
  workdirs.bind(workdir, config)
  np.save(workdir / BINS_FILE, bins)
  # The state a zhang_softmax run trains (train_state.init_state), holding the released weights.
  _, state_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=optim.make_optimizer(config.optimizer).init(params),
                     batch_stats=batch_stats, key=state_key)
  checkpoints = checkpoint.Checkpoints(workdir, max_to_keep=None)
  checkpoints.save(0, state)
  checkpoints.close()
  return workdir
