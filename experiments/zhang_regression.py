"""Zhang et al. 2016 network with an MSE regression head on ab: the desaturation baseline."""

from experiments import zhang_softmax

VARIANTS = zhang_softmax.VARIANTS


def get_config(variant=None):
  """The same network, data and schedule as zhang_softmax; only the head and loss differ."""
  config = zhang_softmax.get_config(variant)
  config.head = 'regression'
  return config
