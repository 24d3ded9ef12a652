"""ResNet-18 encoder + upsampling decoder (the flower-colorization write-up).

The encoder is first trained as a classifier on L (Oxford Flowers-102), then loaded into the
colorizer without the classifier's head: trained end to end from scratch the colorizer
collapses to one colour. Both models hold the same `ResNetEncoder` under the name 'encoder',
so `load_encoder` is a subtree swap.

The encoder is torchvision's resnet18 layer for layer (7x7 stride-2 stem, 3x3 stride-2 max-pool,
stages of two basic blocks at 64, 128, 256, 512 channels, 1x1 conv-BN projection where the
shape changes, bias-free convs, the same explicit paddings and He fan-out initialization), so
with 3 channels and 1000 classes it has torchvision's 11,689,512 parameters.

`dtype` is the compute dtype (models/layers.py): the input is cast to it on entry, the
logits and ab back to float32 on exit.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from colorjax.models.layers import batch_norm

STAGES = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
ENCODER_STRIDE = 32  # stem conv, max-pool and three strided stages each halve the size

_conv = functools.partial(nn.Conv, use_bias=False,
                          kernel_init=nn.initializers.variance_scaling(2.0, 'fan_out', 'normal'))


class BasicBlock(nn.Module):
  """Two conv3x3-BN with a shortcut: identity, or 1x1 conv-BN where the shape changes."""
  features: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(_conv, self.features, dtype=self.dtype)
    y = conv((3, 3), self.strides, padding=1, name='conv1')(x)
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(y))
    y = conv((3, 3), padding=1, name='conv2')(y)
    y = batch_norm(train, self.dtype, 'bn2')(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = conv((1, 1), self.strides, padding='VALID', name='proj_conv')(x)
      x = batch_norm(train, self.dtype, 'proj_bn')(x)
    return nn.relu(x + y)


class ResNetEncoder(nn.Module):
  """NHWC, any channel count -> (N, H/32, W/32, 512) features in `dtype`."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = _conv(STAGES[0], (7, 7), 2, padding=3, dtype=self.dtype, name='stem_conv')(x)
    x = nn.relu(batch_norm(train, self.dtype, 'stem_bn')(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, features in enumerate(STAGES):
      for block in range(BLOCKS_PER_STAGE):
        strides = 2 if stage > 0 and block == 0 else 1
        x = BasicBlock(features, strides, self.dtype,
                       name=f'stage{stage + 1}_block{block + 1}')(x, train)
    return x


class ResNetClassifier(nn.Module):
  """NHWC -> (N, num_classes) logits: encoder, global average pool, dense 'head'."""
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ResNetEncoder(self.dtype, name='encoder')(x.astype(self.dtype), train)
    pooled = jnp.mean(x, axis=(1, 2), dtype=jnp.float32)  # a float32 sum of H/32 x W/32 values
    return nn.Dense(self.num_classes, dtype=self.dtype, name='head')(pooled).astype(jnp.float32)


class ResNetColorizer(nn.Module):
  """NHWC with sides divisible by 32 -> (N, H, W, 2) ab in [0, 1].

  After the encoder, each entry of `decoder_features` is one 2x nearest upsample and
  conv3x3-BN-ReLU; five of them undo the encoder's factor of 32.
  """
  decoder_features: tuple = (256, 128, 64, 32, 16)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    height, width = x.shape[1:3]
    if height % ENCODER_STRIDE or width % ENCODER_STRIDE:
      raise ValueError(f'ResNetColorizer needs height and width divisible by {ENCODER_STRIDE}, '
                       f'got {height}x{width}; crop or resize the input')
    if 2 ** len(self.decoder_features) != ENCODER_STRIDE:
      raise ValueError(f'decoder_features needs one entry per halving of the encoder '
                       f'({ENCODER_STRIDE.bit_length() - 1}), got {self.decoder_features}')
    x = ResNetEncoder(self.dtype, name='encoder')(x.astype(self.dtype), train)
    for index, features in enumerate(self.decoder_features):
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
      x = _conv(features, (3, 3), padding=1, dtype=self.dtype, name=f'up{index + 1}_conv')(x)
      x = nn.relu(batch_norm(train, self.dtype, f'up{index + 1}_bn')(x))
    head = nn.Conv(2, (3, 3), padding=1, dtype=self.dtype, name='head')(x)
    return nn.sigmoid(head.astype(jnp.float32))  # in float32: bf16 would round ab to ~1 unit


def _leaf_shapes(tree):
  return {jax.tree_util.keystr(path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def load_encoder(colorizer_tree, classifier_tree):
  """The colorizer's tree with its 'encoder' replaced by the classifier's; 'head' is dropped.

  Works on any collection of the two models: call it on 'params' and on 'batch_stats', since
  the running statistics belong to the trained weights. Raises ValueError where the encoders'
  leaves differ, e.g. a classifier trained on RGB loaded into a colorizer of L.
  """
  target = _leaf_shapes(colorizer_tree['encoder'])
  source = _leaf_shapes(classifier_tree['encoder'])
  if target != source:
    differing = sorted(k for k in target.keys() | source.keys()
                       if target.get(k) != source.get(k))
    first = differing[0]
    raise ValueError(f'the encoders differ in {len(differing)} leaves, first encoder{first}: '
                     f'colorizer {target.get(first)}, classifier {source.get(first)}; train '
                     'the classifier on the same input channels as the colorizer')
  return {**colorizer_tree, 'encoder': classifier_tree['encoder']}
