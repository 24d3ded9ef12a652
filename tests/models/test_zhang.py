"""Zhang et al.'s network: the paper's block structure, strides, dilations and output size."""

import jax
import jax.numpy as jnp
import pytest


@pytest.mark.parametrize('size', [64, 176, 256])
@pytest.mark.parametrize('outputs', [261, 2], ids=['softmax', 'regression'])
def test_zhang_net_output_is_at_quarter_resolution(size, outputs):
  from colorjax.models.zhang import ZhangNet
  model = ZhangNet(outputs, width=1 / 16)
  l_in = jnp.zeros((2, size, size, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), l_in[:1]))
  output = jax.eval_shape(lambda v: model.apply(v, l_in), variables)
  assert output.shape == (2, size // 4, size // 4, outputs)


def test_zhang_net_full_width_has_the_papers_block_structure():
  """Convs per block 2, 2, 3, 3, 3, 3, 3 (+ BatchNorm), then 1 transposed + 2 convs + head."""
  from colorjax.models.zhang import ZhangNet
  variables = jax.eval_shape(lambda: ZhangNet(313).init(jax.random.PRNGKey(0),
                                                         jnp.zeros((1, 64, 64, 1))))
  blocks = [k for k in variables['params'] if k.startswith('ConvStack')]
  convs = [len([k for k in variables['params'][b] if k.startswith('Conv_')]) for b in blocks]
  assert convs == [2, 2, 3, 3, 3, 3, 3]
  assert all('BatchNorm_0' in variables['batch_stats'][b] for b in blocks)
  head = variables['params']['Conv_2']['kernel']
  assert head.shape == (1, 1, 256, 313)


def _conv_geometry(jaxpr):
  """(window strides, kernel dilation) of every convolution in a jaxpr, nested ones too."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'conv_general_dilated':
      found.append((tuple(eqn.params['window_strides']), tuple(eqn.params['rhs_dilation'])))
    for value in eqn.params.values():
      inner = getattr(value, 'jaxpr', value)
      if hasattr(inner, 'eqns'):
        found += _conv_geometry(inner)
  return found


def test_zhang_net_dilates_blocks_5_and_6_and_strides_blocks_1_to_3():
  """The paper's geometry, read from the traced network: 6 convs with dilation 2 (blocks 5
  and 6, 3 each), 3 with stride 2 (the last of blocks 1-3); the rest plain. Setting a
  dilation to 1 or dropping a stride fails here."""
  from colorjax.models.zhang import ZhangNet
  model = ZhangNet(313, width=1 / 16)
  x = jnp.zeros((1, 64, 64, 1))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))
  geometry = _conv_geometry(jax.make_jaxpr(model.apply)(variables, x).jaxpr)
  assert len(geometry) == 19 + 1 + 2 + 1  # blocks 1-7, the transposed conv, 2 convs, head
  assert [g for g in geometry if g[1] == (2, 2)] == [((1, 1), (2, 2))] * 6
  assert [i for i, g in enumerate(geometry) if g[0] == (2, 2)] == [1, 3, 6]
