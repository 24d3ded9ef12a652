"""The benchmark's PyTorch reference column: five colorjax training steps written in
PyTorch, timed on the same device in the same run, so colorjax's images/s can be read
against what the usual framework does with the same work.

Each step mirrors its colorjax step's compute, not its numerics: the same networks (layer for
layer, the same parameter counts; tests/test_torch_reference.py), the same colour conversion
from uint8 RGB, loss and optimizer, but PyTorch's initializers, random numbers and kernels.
- unet: the U-Net gray -> RGB step of unet_portrait (L / 100 in, MAE on RGB, Adam 1e-3).
- gan: the yuv_gan default step (write-up networks, BCE, Adam 2e-4 b1 0.5): one critic
  update on real and generated YUV (separate BatchNorm passes), then one generator update.
- zhang_softmax, zhang_regression: the Zhang et al. network at full width with its
  rebalanced soft cross-entropy (uniform class weights, as the benchmark) or its ab MSE at
  1/4 resolution (AdamW 3e-5, betas 0.9 / 0.99, weight decay 1e-3).
- flowers_resnet: the colorizer stage of flowers_resnet, ResNet-18 encoder and upsampling
  decoder (written here, not torchvision's: torchvision need not import), L / 100 in, MSE on
  (ab + 128) / 255, the stage's SGD (lr 0.01, momentum 0.9, Nesterov, weight decay 1e-5).

Sides must be multiples of 16 (no reflection padding of the U-Net, the GAN's own limit), of
32 for the ResNet.
Networks and inputs are channels_last (NHWC in memory): on a 2-core CPU its steps were 1.2x
as fast as NCHW's for the U-Net and the GAN, as fast for the Zhang network. The steps run on
the GPU where torch sees one (else all CPU cores, as XLA); 'bfloat16' is PyTorch's automatic
mixed precision (autocast to bf16; colour conversion and the parameters stay float32, as
colorjax's precision.py), and `compile` wraps each network in torch.compile (imported then,
never at module level: torch._dynamo brings triton, whose LLVM aborts beside TensorFlow's).
"""

import functools
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from colorjax import color, configs, optional, quantize
from colorjax.benchmark import timing
from colorjax.families.flowers_resnet import SHIFTED
from colorjax.models import resnet, unet, yuv_gan, zhang

MEMORY_FORMAT = torch.channels_last


@functools.cache
def _xyz_from_rgb(device):
  """color.LAB_XYZ_FROM_RGB on `device`, copied there once (not once per step)."""
  return torch.from_numpy(color.LAB_XYZ_FROM_RGB.astype(np.float32)).to(device)


def _mix_channels(matrix, x_nchw):
  """matrix @ the colour of every pixel in float32 (autocast off), in MEMORY_FORMAT."""
  with torch.autocast(x_nchw.device.type, enabled=False):
    mixed = torch.einsum('ij,njhw->nihw', matrix, x_nchw.float())
  return mixed.contiguous(memory_format=MEMORY_FORMAT)


def _lab(rgb_uint8):
  """uint8 RGB (N, 3, H, W) -> Lab, as color.lab_from_uint8."""
  rgb = rgb_uint8.float() / 255.0
  linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
  xyz = _mix_channels(_xyz_from_rgb(rgb.device), linear)
  f = torch.where(xyz > color.LAB_EPSILON, xyz.clamp_min(color.LAB_EPSILON) ** (1 / 3),
                  color.LAB_KAPPA * xyz + 16.0 / 116.0)
  fx, fy, fz = f.unbind(1)
  return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], 1)


def _batch_norm(features):
  """layers.batch_norm: Flax's momentum 0.9 is PyTorch's 0.1."""
  return nn.BatchNorm2d(features, eps=1e-5, momentum=0.1)


def _double_conv(in_features, features):
  layers = []
  for i in range(2):
    layers += [nn.Conv2d(features if i else in_features, features, 3, padding=1, bias=False),
               _batch_norm(features), nn.ReLU()]
  return nn.Sequential(*layers)


class _UNet(nn.Module):
  """models/unet.UNet at its defaults: gray (N, 1, H, W) -> RGB in [0, 1]."""

  def __init__(self, out_channels=3, features=unet.UNet.features, dropout=unet.UNet.dropout):
    super().__init__()
    encoder = features[:-1]
    self.down = nn.ModuleList(_double_conv(i, o) for i, o in zip((1, *encoder), encoder))
    self.bottleneck = _double_conv(encoder[-1], features[-1])
    self.up = nn.ModuleList(nn.ConvTranspose2d(i, o, 2, stride=2)
                            for i, o in zip(features[:0:-1], encoder[::-1]))
    self.decode = nn.ModuleList(_double_conv(2 * f, f) for f in encoder[::-1])
    self.head = nn.Conv2d(features[0], out_channels, 1)
    self.dropout = nn.Dropout(dropout)

  def forward(self, x):
    skips = []
    for level in self.down:
      x = level(x)
      skips.append(x)
      x = self.dropout(F.max_pool2d(x, 2))
    x = self.bottleneck(x)
    for up, decode, skip in zip(self.up, self.decode, reversed(skips)):
      x = decode(self.dropout(torch.cat([up(x), skip], 1)))
    return torch.sigmoid(self.head(x))


class _Generator(nn.Module):
  """models/yuv_gan.Generator, write-up layout: (Y (N, 1, H, W), noise) -> YUV."""

  def __init__(self, height, width, layout=yuv_gan.LAYOUTS['writeup'],
               noise_layers=yuv_gan.Generator.noise_layers,
               noise_dim=yuv_gan.Generator.noise_dim):
    super().__init__()
    self.noise_layers, self.noise_dim = noise_layers, noise_dim
    self.noise = nn.Linear(noise_dim, height * width)
    self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
    previous = 0
    for i, (features, kernel) in enumerate(zip(layout.generator_features,
                                               layout.generator_kernels)):
      in_features = 1 + previous + (i < noise_layers)
      self.convs.append(nn.Conv2d(in_features, features, kernel, padding=kernel // 2,
                                  bias=layout.conv_bias))
      self.norms.append(_batch_norm(features))
      previous = features
    kernel = layout.generator_kernels[-1]
    self.out = nn.Conv2d(1 + previous, 2, kernel, padding=kernel // 2, bias=layout.conv_bias)
    self.register_buffer('uv_max', torch.tensor(layout.space.uv_max).view(1, 2, 1, 1))

  def forward(self, y, noise):
    plane = self.noise(noise).view(y.shape[0], 1, *y.shape[2:])
    x = y
    for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
      if i:
        x = torch.cat([y, x], 1)
      if i < self.noise_layers:
        x = torch.cat([x, plane], 1)
      x = F.relu(norm(conv(x)))
    uv = torch.tanh(self.out(torch.cat([y, x], 1))) * self.uv_max
    return torch.cat([y, uv], 1)


def _discriminator(height, width):
  """models/yuv_gan.Discriminator, write-up layout: YUV -> (N, 1) logits. Flax's 'SAME' at
  stride 2 on even sizes pads kernel - 2 in all, the smaller half first: 1 and 1 at 4x4."""
  kernel, layers, in_features = yuv_gan.LAYOUTS['writeup'].discriminator_kernel, [], 3
  for features in yuv_gan.DISCRIMINATOR_FEATURES:
    layers += [nn.Conv2d(in_features, features, kernel, stride=2, padding=(kernel - 2) // 2,
                         bias=False), _batch_norm(features), nn.LeakyReLU(0.2)]
    in_features = features
  scale = 2 ** len(yuv_gan.DISCRIMINATOR_FEATURES)
  return nn.Sequential(*layers, nn.Flatten(),
                       nn.Linear(in_features * (height // scale) * (width // scale), 1))


def _zhang_net(num_outputs):
  """models/zhang.ZhangNet at width 1, its explicit paddings: L (N, 1, H, W) - 50 in."""
  layers, in_features = [], 1
  for features, convs, stride, dilation in zhang.BLOCKS:
    for i in range(convs):
      layers += [nn.Conv2d(in_features, features, 3, stride=stride if i == convs - 1 else 1,
                           padding=dilation, dilation=dilation), nn.ReLU()]
      in_features = features
    layers.append(_batch_norm(features))
  layers += [nn.ConvTranspose2d(in_features, 256, 4, stride=2, padding=1), nn.ReLU()]
  for _ in range(2):
    layers += [nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]
  return nn.Sequential(*layers, nn.Conv2d(256, num_outputs, 1))


def _conv_bn(in_features, features, kernel, stride=1):
  """resnet._conv (bias-free, padding kernel // 2) and its BatchNorm."""
  return [nn.Conv2d(in_features, features, kernel, stride, padding=kernel // 2, bias=False),
          _batch_norm(features)]


class _BasicBlock(nn.Module):
  """models/resnet.BasicBlock."""

  def __init__(self, in_features, features, stride):
    super().__init__()
    self.residual = nn.Sequential(*_conv_bn(in_features, features, 3, stride), nn.ReLU(),
                                  *_conv_bn(features, features, 3))
    self.shortcut = (nn.Sequential(*_conv_bn(in_features, features, 1, stride))
                     if stride != 1 or in_features != features else nn.Identity())

  def forward(self, x):
    return F.relu(self.shortcut(x) + self.residual(x))


def _resnet_colorizer():
  """models/resnet.ResNetColorizer on L, layer for layer (Conv2d and BatchNorm2d in the order
  of its parameters): L / 100 (N, 1, H, W) -> ab in [0, 1]."""
  width = resnet.STAGES[0]
  layers = [*_conv_bn(1, width, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1)]
  for stage, features in enumerate(resnet.STAGES):
    for block in range(resnet.BLOCKS_PER_STAGE):
      layers.append(_BasicBlock(width, features, 2 if stage and not block else 1))
      width = features
  for features in resnet.ResNetColorizer.decoder_features:
    layers += [nn.Upsample(scale_factor=2), *_conv_bn(width, features, 3), nn.ReLU()]
    width = features
  return nn.Sequential(*layers, nn.Conv2d(width, 2, 3, padding=1), nn.Sigmoid())


def _networks(family, height, width):
  if family == 'unet':
    return [_UNet()]
  if family == 'gan':
    return [_Generator(height, width), _discriminator(height, width)]
  if family in ('zhang_softmax', 'zhang_regression'):
    return [_zhang_net(len(quantize.gamut_bins()) if family == 'zhang_softmax' else 2)]
  if family == 'flowers_resnet':
    return [_resnet_colorizer()]
  raise ValueError(f'no PyTorch reference for family {family!r}')


def parameter_count(family: str) -> int:
  """Trainable parameters of the family's network(s) at 64x64 (the GAN's: G + D)."""
  return sum(p.numel() for network in _networks(family, 64, 64) for p in network.parameters()
             if p.requires_grad)


def _update(optimizer, loss):
  optimizer.zero_grad()
  loss.backward()
  optimizer.step()


def _unet_step(net):
  optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

  def step(rgb_uint8):  # losses.rgb_regression with unet_portrait's L / 100
    lightness = _lab(rgb_uint8)[:, :1] / 100.0
    _update(optimizer, torch.mean(torch.abs(net(lightness) - rgb_uint8.float() / 255.0)))

  return step


def _gan_step(generator, discriminator):
  """programs/yuv_gan.make_train_step with n_critic 1: the critic on the batch's real YUV and
  on samples of the generator (training-mode BatchNorm, no gradient), then the generator
  through the updated critic (its weights get no gradient: JAX differentiates G only)."""
  g_optimizer, d_optimizer = (torch.optim.Adam(n.parameters(), lr=2e-4, betas=(0.5, 0.999))
                              for n in (generator, discriminator))
  device = next(generator.parameters()).device
  yuv_from_rgb = torch.from_numpy(np.asarray(
      yuv_gan.LAYOUTS['writeup'].space.encode(np.eye(3, dtype=np.float32))).T.copy()).to(device)
  low, high = yuv_gan.LAYOUTS['writeup'].noise_range

  def noise(count):
    return torch.empty(count, generator.noise_dim, device=device).uniform_(low, high)

  def step(rgb_uint8):
    real = _mix_channels(yuv_from_rgb, rgb_uint8.float() / 255.0)
    y, count = real[:, :1], real.shape[0]
    with torch.no_grad():
      fake = generator(y, noise(count))
    _update(d_optimizer, F.softplus(-discriminator(real)).mean()
            + F.softplus(discriminator(fake)).mean())
    discriminator.requires_grad_(False)
    _update(g_optimizer, F.softplus(-discriminator(generator(y, noise(count)))).mean())
    discriminator.requires_grad_(True)

  return step


def _soft_cross_entropy(logits, ab_quarter, bins, class_weights, neighbours=10, sigma=5.0):
  """losses.rebalanced_soft_cross_entropy per pixel, without the image weight: the target
  is quantize.soft_encode of the true ab, each pixel weighted by its most likely bin's
  class weight."""
  with torch.no_grad(), torch.autocast(ab_quarter.device.type, enabled=False):
    ab = ab_quarter.permute(0, 2, 3, 1).float()
    d2 = ((ab ** 2).sum(-1, keepdim=True) - 2 * ab @ bins.T + (bins ** 2).sum(-1)).clamp_min(0)
    neg_d2, index = torch.topk(-d2, neighbours)
    gaussian = torch.exp((neg_d2 - neg_d2[..., :1]) / (2 * sigma ** 2))
    target = torch.zeros_like(d2).scatter_(-1, index, gaussian / gaussian.sum(-1, keepdim=True))
    pixel_weight = class_weights[target.argmax(-1)]
  return pixel_weight * -(target * F.log_softmax(logits.permute(0, 2, 3, 1), -1)).sum(-1)


def _zhang_step(net, softmax):
  """losses.rebalanced_soft_cross_entropy (uniform class weights, as the benchmark) or
  losses.quarter_ab_regression, gray_threshold 5, AdamW as family_steps.py."""
  optimizer = torch.optim.AdamW(net.parameters(), lr=3e-5, betas=(0.9, 0.99), weight_decay=1e-3)
  device = next(net.parameters()).device
  bins = torch.from_numpy(quantize.gamut_bins()).to(device)
  class_weights = torch.ones(len(bins), device=device)

  def step(rgb_uint8):
    lab = _lab(rgb_uint8)
    output = net(lab[:, :1] - 50.0)
    quarter = lab[:, :, ::4, ::4]
    image_weight = (quarter[:, 1:].abs().amax((1, 2, 3)) > 5.0).float()[:, None, None]
    if softmax:
      error = _soft_cross_entropy(output, quarter[:, 1:], bins, class_weights)
    else:
      error = ((output - quarter[:, 1:]) ** 2).sum(1)
    _update(optimizer, torch.mean(image_weight * error))

  return step


def _flowers_step(net):
  """losses.ab_regression with the 'shifted' normalization, the colorizer stage's optimizer
  (SGD's weight decay is coupled in both: optim.py adds it to the gradient)."""
  settings = configs.load_config('flowers_resnet').colorizer.optimizer
  optimizer = torch.optim.SGD(net.parameters(), lr=settings.learning_rate,
                              momentum=settings.momentum, nesterov=settings.nesterov,
                              weight_decay=settings.weight_decay)
  device = next(net.parameters()).device
  offset, scale = (torch.from_numpy(v).to(device).view(1, 3, 1, 1)
                   for v in (SHIFTED.offset, SHIFTED.scale))

  def step(rgb_uint8):
    lab = (_lab(rgb_uint8) - offset) / scale
    _update(optimizer, torch.mean((net(lab[:, :1]) - lab[:, 1:]) ** 2))

  return step


def device() -> torch.device:
  """Where the reference runs: the GPU where torch sees one, else the CPU."""
  return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def _train_step(family, height, width, compile_networks):
  """The family's networks in training mode and its step (uint8 RGB, N x 3 x H x W) -> None."""
  optional.keep_triton_from_tensorflow()
  networks = [network.to(device(), memory_format=MEMORY_FORMAT).train()
              for network in _networks(family, height, width)]
  if compile_networks:
    # Dynamo counts the compilations of every instance of a class (nn.Sequential) against one
    # recompile limit (8), past which it runs eager with a warning: start afresh each time.
    torch.compiler.reset()
    networks = [torch.compile(network) for network in networks]
  if family == 'unet':
    return _unet_step(*networks)
  if family == 'gan':
    return _gan_step(*networks)
  if family == 'flowers_resnet':
    return _flowers_step(*networks)
  return _zhang_step(*networks, softmax=family == 'zhang_softmax')


def _synchronize():
  if torch.cuda.is_available():
    torch.cuda.synchronize()


def time_train_step(family: str, rgb_nhwc_uint8: np.ndarray, steps: int, repeats: int = 1,
                    dtype: str = 'float32', compile_networks: bool = False) -> dict:
  """{'init_s': seconds to build the networks and optimizers, 'first_step_s': the first
  step (torch.compile's compilation with `compile_networks`), 'images_per_second': the best
  of `repeats` windows of `steps` further steps} of one family on one batch, in float32 or
  under bf16 autocast (dtype 'bfloat16')."""
  torch.manual_seed(0)
  rgb = torch.from_numpy(np.ascontiguousarray(rgb_nhwc_uint8)).permute(0, 3, 1, 2)
  rgb = rgb.to(device()).contiguous(memory_format=MEMORY_FORMAT)
  start = time.perf_counter()
  train_step = _train_step(family, *rgb.shape[2:], compile_networks)
  init_s = time.perf_counter() - start

  def run(count):
    with torch.autocast(device().type, dtype=torch.bfloat16, enabled=dtype == 'bfloat16'):
      for _ in range(count):
        train_step(rgb)
    _synchronize()

  start = time.perf_counter()
  run(1)
  first_step_s = time.perf_counter() - start
  best = timing.best_seconds(lambda: run(steps), repeats)
  return {'init_s': init_s, 'first_step_s': first_step_s,
          'images_per_second': steps * rgb.shape[0] / best}
