"""U-Net colorization of portraits: gray -> RGB against L -> ab, MAE, one report."""

import ml_collections

from colorjax import configs

VARIANTS = ('gray2rgb', 'l2ab', 'smoke')


def get_config(variant=None):
  """The portrait write-up: PFCN portraits (100x75) from an .npz, Adam, MAE, 50 epochs, both
  tasks compared. 'gray2rgb' or 'l2ab' trains one; 'smoke' trains both on the bundled photos
  in about a minute."""
  config = ml_collections.ConfigDict()
  config.program = 'portrait'
  config.tasks = ('gray2rgb', 'l2ab')
  config.dropout = 0.1
  config.seed = 0
  # The write-up's pfcn_small.npz: train_images (1700) and test_images, 100x75 RGB. Random
  # 75x75 crops (the full width) for training, centre crops for evaluation.
  config.data = configs.data_config(source='npz:~/data/pfcn_small.npz', crop=75,
                                    batch_size=32, eval_batch_size=32)
  config.optimizer = ml_collections.ConfigDict(dict(name='adam', learning_rate=1e-3))
  config.epochs = 50                # overrides num_steps when > 0
  config.num_steps = 0
  config.log_every = 10
  config.checkpoint_every = 500
  config.max_to_keep = 2
  config.eval_batches = 100
  config.report_images = 6
  if variant in ('gray2rgb', 'l2ab'):
    config.tasks = (variant,)
  if variant == 'smoke':
    config.data.update(source='samples', crop=48, batch_size=8, eval_batch_size=8,
                       shuffle_buffer=64)
    config.epochs = 0
    config.num_steps = 30
    config.checkpoint_every = 30
    config.eval_batches = 1
    config.report_images = 4
  return config
