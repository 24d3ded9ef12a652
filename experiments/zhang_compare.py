"""Side by side: the softmax and regression runs of Zhang et al.'s network (run both first)."""

import ml_collections

VARIANTS = ('smoke', 'bsds300')


def get_config(variant=None):
  config = ml_collections.ConfigDict()
  config.program = 'zhang_compare'
  suffix = f'/{variant}' if variant else ''
  config.runs = (f'runs/zhang_softmax{suffix}', f'runs/zhang_regression{suffix}')
  return config
