"""Each family's training step as its program builds it, timed in three parts: init (the
fresh state), compile (lowering and XLA compilation of the step) and steps (images/s of
jitted steps dispatched back to back, as fit() runs them). The benchmark's family table;
the same steps in PyTorch (torch_reference.py) give its reference column."""

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from colorjax import configs, precision, quantize, xla_cpu
from colorjax.benchmark import timing
from colorjax.errors import UsageError
from colorjax.families import flowers_resnet as flowers_family, unet_portrait as unet_family
from colorjax.models.resnet import ENCODER_STRIDE
from colorjax.models.unet import UNet
from colorjax.models.zhang import ZhangNet
from colorjax.programs import unet_portrait, yuv_gan
from colorjax.train import losses, optim, throughput, train_state

FAMILIES = ('unet', 'gan', 'zhang_softmax', 'zhang_regression', 'flowers_resnet')


def side_multiple(family: str) -> int:
  """What a family's square side must be a multiple of: ResNet-18 halves it five times; the
  others need 16 (the GAN's own limit, the PyTorch U-Net's pooling without padding)."""
  return ENCODER_STRIDE if family == 'flowers_resnet' else 16


class FamilyStep(NamedTuple):
  init: Callable  # () -> state
  step: Callable  # (state, batch) -> (state, metrics)


def _supervised(model, loss_fn, optimizer, size) -> FamilyStep:
  tx = optim.make_optimizer(optimizer)
  sample = jnp.zeros((1, size, size, 1))
  return FamilyStep(lambda: train_state.init_state(model, tx, jax.random.PRNGKey(0), sample),
                    train_state.make_train_step(loss_fn, tx))


def family_step(family: str, size: int, batch_size: int, compute_dtype='float32') -> FamilyStep:
  """The train step of `family` (FAMILIES) at size x size: the unet_portrait gray -> RGB step,
  the yuv_gan default (BCE, Adam; critic and generator update), the full-width Zhang et al.
  network with its two heads (AdamW), and the flowers_resnet colorizer stage (ResNet-18
  encoder and decoder, MSE on shifted ab, the stage's SGD) from its fresh state."""
  dtype = precision.compute_dtype({'compute_dtype': compute_dtype})
  if family == 'unet':
    model = UNet(unet_family.TASKS['gray2rgb'].outputs, dtype=dtype)
    return _supervised(model, unet_portrait.LOSSES['gray2rgb'](model),
                       configs.optimizer('adam', 1e-3), size)
  if family == 'flowers_resnet':
    config = configs.load_config('flowers_resnet')
    config.compute_dtype = compute_dtype
    model = flowers_family.network(config)
    return _supervised(model, losses.ab_regression(model, flowers_family.SHIFTED),
                       config.colorizer.optimizer, size)
  if family == 'gan':
    config = configs.load_config('yuv_gan')
    config.data.crop, config.data.batch_size = size, batch_size
    config.compute_dtype = compute_dtype
    return FamilyStep(lambda: yuv_gan.init_state(config), yuv_gan.make_train_step(config))
  adamw = configs.optimizer('adamw', 3e-5, b1=0.9, b2=0.99, weight_decay=1e-3)
  if family == 'zhang_softmax':
    bins = quantize.gamut_bins()
    model = ZhangNet(len(bins), dtype=dtype)
    return _supervised(model, losses.rebalanced_soft_cross_entropy(model, bins,
                                                                   np.ones(len(bins))),
                       adamw, size)
  if family == 'zhang_regression':
    model = ZhangNet(2, dtype=dtype)
    return _supervised(model, losses.quarter_ab_regression(model), adamw, size)
  raise UsageError(f"unknown family '{family}': choose from {', '.join(FAMILIES)}")


class StepTiming(NamedTuple):
  init_s: float
  compile_s: float
  images_per_second: float
  flops: float | None  # XLA's estimate for one step (throughput.lowered_flops)


def time_family(family_step_: FamilyStep, batch, steps: int, repeats: int = 1) -> StepTiming:
  """Init (one compiled function, as the programs run it: state.init_network), compile, and
  the rate of the best of `repeats` windows of `steps` steps, after one warm-up step."""
  start = time.perf_counter()
  train_state = jax.block_until_ready(family_step_.init())
  init_s = time.perf_counter() - start
  start = time.perf_counter()
  lowered = xla_cpu.jit(family_step_.step, donate_argnums=0).lower(train_state, batch)
  step = lowered.compile()
  compile_s = time.perf_counter() - start
  train_state, metrics = step(train_state, batch)
  jax.block_until_ready(metrics)

  def run_steps():
    nonlocal train_state, metrics
    for _ in range(steps):
      train_state, metrics = step(train_state, batch)
    jax.block_until_ready(metrics)

  rate = steps * len(batch['rgb']) / timing.best_seconds(run_steps, repeats)
  return StepTiming(init_s, compile_s, rate, throughput.lowered_flops(lowered))
