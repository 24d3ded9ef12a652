"""Mixed precision (--config.compute_dtype=bfloat16, colorjax/precision.py): every family
computes in bf16 with float32 parameters, statistics and outputs; a bf16 run's loss curve
tracks float32's on the bundled photos; inference honours the run's compute dtype, and a run
saved before the field existed is float32."""

import functools
import json

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import colorjax
from colorjax import configs, inference, precision, programs, quantize
from colorjax.cli import flags
from colorjax.data import pipeline, sources
from colorjax.errors import UsageError
from colorjax.families import flowers_resnet, norm_ablation, unet_portrait, yuv_gan, zhang
from colorjax.families.spec import Options
from colorjax.models import layers
from colorjax.models.resnet import ResNetClassifier
from colorjax.models.zhang import ZhangNet
from colorjax.train import losses, optim, train_state
from tests import saved_runs

EXPERIMENTS = ('norm_ablation', 'yuv_gan:smoke', 'yuv_gan:authors', 'unet_portrait:smoke',
               'flowers_resnet:smoke', 'zhang_softmax:smoke', 'zhang_regression:smoke')
LAYERS = (nn.Conv, nn.ConvTranspose, nn.Dense, nn.BatchNorm, layers.Conv3x3)


@functools.cache
def _bins():
  return quantize.gamut_bins()


def _bf16_config(experiment):
  return flags.apply_overrides(configs.load_config(experiment), {'compute_dtype': 'bfloat16'},
                               experiment)


def _networks(experiment):
  """(name, model, example inputs) of every network the experiment's program builds."""
  config = _bf16_config(experiment)
  l_in = jnp.zeros((2, 32, 32, 1))
  if experiment == 'norm_ablation':
    return [('tiny cnn', norm_ablation.network(config), (l_in,))]
  if experiment.startswith('zhang'):
    return [('zhang', zhang.network(config, _bins()), (l_in,))]
  if experiment.startswith('unet'):
    return [(task, unet_portrait.network(config, task), (l_in,)) for task in config.tasks]
  if experiment.startswith('flowers'):
    return [('classifier', ResNetClassifier(config.num_classes,
                                            dtype=precision.compute_dtype(config)), (l_in,)),
            ('colorizer', flowers_resnet.network(config), (l_in,))]
  generator, discriminator = yuv_gan.networks(config)
  return [('generator', generator, (l_in, jnp.zeros((2, generator.noise_dim)))),
          ('discriminator', discriminator, (jnp.zeros((2, 32, 32, 3)),))]


def _dtypes(tree):
  return {jax.tree_util.keystr(path): leaf.dtype
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_bf16_networks_hold_float32_and_compute_in_bf16(experiment):
  """Shapes and dtypes only (jax.eval_shape: nothing compiles). Every conv, dense and
  BatchNorm layer's output must be bf16 (a layer built without the dtype computes in float32
  and fails here), the parameters and the running statistics float32, the output float32."""
  for name, model, inputs in _networks(experiment):
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *inputs))
    assert set(_dtypes(variables).values()) == {jnp.dtype(jnp.float32)}, name

    def apply(variables):
      return model.apply(variables, *inputs, train=True, mutable=['batch_stats'],
                         capture_intermediates=lambda m, _: isinstance(m, LAYERS),
                         rngs={'dropout': jax.random.PRNGKey(0)})

    output, updated = jax.eval_shape(apply, variables)
    activations = _dtypes(updated['intermediates'])
    assert activations and set(activations.values()) == {jnp.dtype(jnp.bfloat16)}, (
        name, {k: v for k, v in activations.items() if v != jnp.bfloat16})
    assert set(_dtypes(updated.get('batch_stats', {})).values()) <= {jnp.dtype(jnp.float32)}
    assert output.dtype == jnp.float32, name


def test_batch_norm_statistics_are_float32_sums_of_bf16_activations():
  """One training step of layers.batch_norm at momentum 0.9 from mean 0, var 1: the running
  averages must be 0.1 x the float32 statistics of the bf16 input. Statistics kept in bf16
  (force_float32_reductions=False) round them to 8 bits, ~1e-3 relative."""
  x = (1 + np.random.default_rng(0).random((64, 5, 5, 3)) / 3).astype(jnp.bfloat16)
  variables = {'params': {'scale': np.ones(3, np.float32), 'bias': np.zeros(3, np.float32)},
               'batch_stats': {'mean': np.zeros(3, np.float32), 'var': np.ones(3, np.float32)}}
  norm = layers.batch_norm(train=True, dtype=jnp.bfloat16)
  y, updated = jax.jit(lambda v, x: norm.apply(v, x, mutable=['batch_stats']))(variables, x)
  x64 = np.asarray(x, np.float64)
  stats = updated['batch_stats']
  assert y.dtype == jnp.bfloat16 and stats['mean'].dtype == stats['var'].dtype == jnp.float32
  np.testing.assert_allclose(stats['mean'], 0.1 * x64.mean((0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * x64.var((0, 1, 2)), rtol=1e-6)


@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_a_compute_dtype_other_than_float32_or_bfloat16_is_one_line(experiment):
  config = flags.apply_overrides(configs.load_config(experiment), {'compute_dtype': 'float16'},
                                 experiment)
  with pytest.raises(UsageError, match=r"compute_dtype='float16'.*'float32' or 'bfloat16'"):
    programs.load(config.program).check(config)


def test_a_config_without_the_field_computes_in_float32():
  assert precision.compute_dtype(configs.data_config()) == jnp.float32  # an older config.json


# The loss-curve test: the Zhang et al. network at 1/8 width with its softmax head (the
# loss whose softmax bf16 would hurt most), 40 Adam steps on 32x32 crops of the bundled
# photos, batch 8, the same batches and initial weights in each precision; class weights 1
# (rebalancing scales pixels, it does not change what precision does). The learning rate is
# 1e-4, near the paper's 3e-5: where an update is below a bf16 weight's resolution (2^-8
# relative), which is why the parameters and the optimizer state stay float32.
STEPS, FIRST_LAST = 40, 10
ADAM = {'name': 'adam', 'learning_rate': 1e-4}
# Compared: how much each run learns, the mean loss of the first 10 steps minus that of the
# last 10 (float32 learns ~0.1 of ~5.5). Measured on XLA:CPU over seeds 0-3: bf16 learns
# 0.989-1.034x what float32 does; bf16 with bf16 parameters and optimizer state (pure bf16,
# the broken variant below) 0.35-0.54x, since most of its updates round away. 10% passes the
# first with 3x to spare and fails the second by 4.6x.
TOLERANCE = 0.10


def _loss_curve(model, state, batches):
  loss_fn = losses.rebalanced_soft_cross_entropy(model, _bins(), np.ones(len(_bins())))
  step = jax.jit(train_state.make_train_step(loss_fn, optim.make_optimizer(ADAM)))
  curve = []
  for rgb in batches:
    state, metrics = step(state, {'rgb': rgb})
    curve.append(metrics['loss'])
  return np.asarray(curve)


def _learned(curve):
  return curve[:FIRST_LAST].mean() - curve[-FIRST_LAST:].mean()


@pytest.mark.slow
def test_bf16_learns_as_float32_does_and_pure_bf16_would_not():
  config = configs.data_config(source='samples', crop=32, batch_size=8)
  batches = pipeline.train_batches(sources.load_source(config, 'train'), config)
  batches = [next(batches)['rgb'] for _ in range(STEPS)]
  f32, bf16 = (ZhangNet(len(_bins()), 0.125, dtype) for dtype in (jnp.float32, jnp.bfloat16))
  tx = optim.make_optimizer(ADAM)
  state = saved_runs.numpy_state(f32, tx, (1, 32, 32, 1))
  reference = _learned(_loss_curve(f32, state, batches))
  assert reference > 0.05  # float32 learns: ~0.1 of ~5.5 in 40 steps
  assert abs(_learned(_loss_curve(bf16, state, batches)) / reference - 1) < TOLERANCE
  # The test can fail: with the parameters and Adam's moments in bf16 it does.
  params = jax.tree.map(lambda w: w.astype(jnp.bfloat16), state.params)
  pure_bf16 = state.replace(params=params, opt_state=jax.jit(tx.init)(params))
  assert abs(_learned(_loss_curve(bf16, pure_bf16, batches)) / reference - 1) > TOLERANCE


@pytest.fixture(scope='module')
def bf16_run(tmp_path_factory):
  """A zhang_softmax workdir trained in bf16 (random weights, the head scaled so that its
  logits spread over ~0.3 and the annealed mean shows the compute dtype), as a run leaves it."""
  root = tmp_path_factory.mktemp('bf16')
  config, state = saved_runs.zhang_smoke_run(
      root, {'width': '0.0625', 'data.crop': '32', 'compute_dtype': 'bfloat16'},
      lambda config: saved_runs.numpy_state(ZhangNet(len(_bins()), config.width),
                                  optim.make_optimizer(config.optimizer), (1, 32, 32, 1)),
      20000)
  return root, config, state


def _conv_dtypes(predict_ab, variables):
  """The operand dtypes of every convolution a predictor runs, read from its jaxpr."""
  lightness = jnp.zeros((2, 32, 32, 1))
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  dtypes = set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'conv_general_dilated':
        dtypes.update(v.aval.dtype for v in eqn.invars)
      for inner in jax.extend.core.jaxprs_in_params(eqn.params):
        walk(inner)

  walk(jax.make_jaxpr(predict_ab)(variables, lightness, keys).jaxpr)
  return dtypes


def _float32_ab(config, state, lightness):
  model = ZhangNet(len(_bins()), config.width)
  logits = jax.jit(model.apply)({'params': state.params, 'batch_stats': state.batch_stats},
                                jnp.asarray(lightness)[..., None])
  return np.asarray(zhang.decode_ab(logits, _bins(), config.temperature))


def _lightness():
  return np.random.default_rng(0).uniform(0, 100, (2, 32, 32)).astype(np.float32)


def test_inference_computes_in_the_runs_compute_dtype(bf16_run):
  """What run.py colorize, colorjax.load and the evaluator restore (inference.load_network)
  convolves in bf16 and answers float32 ab near float32's (bf16's rounding, amplified by the
  scaled head, moves the annealed mean by ~0.4 on average: it is not compared digit for digit,
  since two compilations of a bf16 network round differently)."""
  root, config, state = bf16_run
  network, variables = inference.load_network(root, Options())
  assert _conv_dtypes(network.predict_ab, variables) == {jnp.dtype(jnp.bfloat16)}
  ab = colorjax.load(root).predict_ab(_lightness())
  assert ab.dtype == np.float32
  assert np.abs(ab - _float32_ab(config, state, _lightness())).mean() < 1.0


def test_a_run_saved_without_compute_dtype_loads_as_float32(bf16_run, tmp_path):
  """An older run's config.json has no compute_dtype: it computes in float32."""
  root, config, state = bf16_run
  older = json.loads((root / 'config.json').read_text())
  del older['compute_dtype']
  (tmp_path / 'config.json').write_text(json.dumps(older))
  (tmp_path / 'checkpoints').symlink_to(root / 'checkpoints')
  network, variables = inference.load_network(tmp_path, Options())
  assert _conv_dtypes(network.predict_ab, variables) == {jnp.dtype(jnp.float32)}
  np.testing.assert_allclose(colorjax.load(tmp_path).predict_ab(_lightness()),
                             _float32_ab(config, state, _lightness()), atol=1e-3)
