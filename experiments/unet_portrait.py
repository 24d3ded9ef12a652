"""U-Net colorization of portraits: gray -> RGB against L -> ab, MAE, one report."""

import ml_collections

from colorjax import configs

VARIANTS = ('gray2rgb', 'l2ab', 'smoke', 'bsds300')


def get_config(variant=None):
  """The portrait write-up: PFCN portraits (100x75) from an .npz, Adam, MAE, 50 epochs, both
  tasks compared. 'gray2rgb' or 'l2ab' trains one; 'smoke' trains both on the bundled photos
  in about a minute; 'bsds300' trains both on 263 real photos and scores them on 37 held-out
  ones (configs.real_photos), about 25 minutes on 2 CPU cores."""
  config = ml_collections.ConfigDict()
  config.program = 'unet_portrait'
  config.tasks = ('gray2rgb', 'l2ab')
  config.dropout = 0.1
  config.seed = 0
  config.compute_dtype = 'float32'  # float32 | bfloat16: mixed precision (colorjax/precision.py)
  # The write-up's pfcn_small.npz: train_images (1700) and test_images, 100x75 RGB. Random
  # 75x75 crops (the full width) for training, centre crops for evaluation.
  config.data = configs.data_config(source='npz:~/data/pfcn_small.npz', crop=75,
                                    batch_size=32, eval_batch_size=32)
  config.optimizer = configs.optimizer('adam', 1e-3)
  configs.schedule(config, epochs=50, log_every=10, checkpoint_every=500)
  if variant in ('gray2rgb', 'l2ab'):
    config.tasks = (variant,)
  if variant == 'smoke':
    configs.smoke(config, crop=48, num_steps=30)
  if variant == 'bsds300':
    configs.real_photos(config, crop=64, num_steps=1000, log_every=50, eval_every=100,
                   best_metric='psnr')
  return config
