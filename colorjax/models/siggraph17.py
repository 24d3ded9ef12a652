"""Real-Time User-Guided Image Colorization (Zhang, Zhu, Isola et al. 2017): the released
siggraph17 network (richzhang/colorization, colorizers/siggraph17.py), layer for layer.

Input: L, the user's hint ab and a 0/1 mask of where hints are. Blocks 1-7 are the eccv16
network's (models/zhang.py: ConvStack and BLOCKS) with every conv at stride 1 and a
`[::2, ::2]` subsampling after blocks 1-3 where eccv16 strides; the decoder climbs back to
full resolution in three steps, each a 4x4 stride-2 transposed conv added to a 3x3 conv of
the encoder map of that resolution (conv3_3, conv2_2, conv1_2), then ReLU and convs with
BatchNorm after blocks 8 and 9 and a LeakyReLU(0.2) in 10; a 1x1 conv to 2, tanh, x 110.
The released model_class head (529 classes) never reaches the output and is not built.

Layer names are the release's (model1 ... model10, model8up, model3short8, ...) so that
colorjax/released.py maps them by name. As ZhangNet, the network takes Lab units and the
importer folds the published input scaling ((L - 50) / 100, ab / 110) into the first kernel.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from colorjax.models import layers
from colorjax.models.zhang import BLOCKS, ConvStack

AB_SCALE = 110.0  # the published output is tanh x 110
STRIDE = 8  # three subsamplings: sides must be multiples of 8 to climb back
# (block, features, convs of its ConvStack after the ReLU, encoder block of its shortcut)
DECODER = ((8, 256, 2, 3), (9, 128, 1, 2), (10, 128, 0, 1))


def _conv3x3(features, dtype, name):
  return nn.Conv(features, (3, 3), padding=[(1, 1), (1, 1)], dtype=dtype, name=name)


class SiggraphNet(nn.Module):
  """(L, hint a, hint b, mask) NHWC, L in 0..100 and ab in Lab units -> ab (N, H, W, 2) in
  Lab units. L alone (1 channel) means no hints, as the published forward's defaults."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.shape[1] % STRIDE or x.shape[2] % STRIDE:
      raise ValueError(f'siggraph17 takes sides that are multiples of {STRIDE}, not '
                       f'{x.shape[1]}x{x.shape[2]}')
    if x.shape[-1] == 1:
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, 3)))
    x = (x - jnp.array([50.0, 0, 0, 0])).astype(self.dtype)  # centred, as ZhangNet
    encoder = {}
    for block, (features, convs, stride, dilation) in enumerate(BLOCKS, 1):
      x = ConvStack(features, convs, 1, dilation, self.dtype, name=f'model{block}')(x, train)
      if stride == 2:
        encoder[block], x = x, x[:, ::2, ::2]
    for block, features, convs, source in DECODER:
      up = layers.ConvTranspose(features, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                                dtype=self.dtype, name=f'model{block}up')(x)
      shortcut = _conv3x3(features, self.dtype, f'model{source}short{block}')(encoder[source])
      x = nn.relu(up + shortcut)
      if convs:
        x = ConvStack(features, convs, dtype=self.dtype, name=f'model{block}')(x, train)
    x = nn.leaky_relu(_conv3x3(128, self.dtype, 'model10')(x), 0.2)
    ab = nn.Conv(2, (1, 1), dtype=self.dtype, name='model_out')(x).astype(jnp.float32)
    return jnp.tanh(ab) * AB_SCALE
