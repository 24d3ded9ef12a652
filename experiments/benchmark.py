"""Speed: training-step time of the tiny CNN per formulation and image size, in ms/iteration."""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.program = 'benchmark'
  config.image = 'coffee'
  config.sizes = ('400x600', '100x150')  # HxW; 400x600 is the full coffee photo
  config.formulations = ('taps', 'xla')   # layers.py: unrolled taps (CPU) / lax.conv (cuDNN)
  config.channels = 6
  config.steps = 50                       # timed iterations, after one compiled warm-up call
  config.repeats = 3                      # best of
  return config
