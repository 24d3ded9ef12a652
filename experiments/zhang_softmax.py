"""Zhang et al. 2016: quantized ab, rebalanced soft cross-entropy, annealed-mean decoding."""

import ml_collections

from colorjax import configs

VARIANTS = ('smoke', 'bsds300')


def get_config(variant=None):
  """The paper's settings; 'smoke' trains a 1/8-width network on the bundled photos in about
  a minute on CPU; 'bsds300' the 1/8-width one on 263 real photos, scored on 37 held-out
  ones (configs.real_photos), about 10 minutes on 2 CPU cores (regression: 5)."""
  config = ml_collections.ConfigDict()
  config.program = 'zhang'
  config.head = 'softmax'          # softmax (Q bin logits) | regression (ab, MSE)
  config.width = 1.0               # channel multiplier of the network
  config.bins = ''                 # '' = the sRGB gamut set (quantize.py), or a Q x 2 .npy
  config.prior_batches = 500       # training batches counted for the empirical prior
  config.rebalance_mix = 0.5       # lambda of the rebalancing weights
  config.temperatures = (0.01, 0.2, 0.38, 0.6, 1.0)  # annealed-mean sweep in the report
  config.temperature = 0.38        # the annealed mean colorize and colorjax.load decode with
  config.seed = 0
  config.compute_dtype = 'float32'  # float32 | bfloat16: mixed precision (colorjax/precision.py)
  config.data = configs.data_config(source='imagenet2012', crop=176, batch_size=40,
                                    eval_batch_size=40)
  # Caffe's solver: weight decay added to the gradient before Adam (train.make_optimizer's
  # coupled path, not AdamW's decoupled one), the rate x0.1 at 225k of 450k steps. The
  # paper's k-means initialization of the weights is not reproduced (Flax's default init).
  config.optimizer = configs.optimizer('adam', 3e-5, schedule='steps', drops=((225_000, 0.1),),
                                       b1=0.9, b2=0.99, weight_decay=1e-3)
  # At most 250 eval batches (10,000 images).
  configs.schedule(config, num_steps=450_000, checkpoint_every=5_000, eval_batches=250)
  if variant in ('smoke', 'bsds300'):
    config.optimizer.update(schedule='constant', drops=())
  if variant == 'bsds300':
    config.width = 0.125
    config.prior_batches = 50
    config.optimizer.learning_rate = 1e-3
    configs.real_photos(config, crop=64, num_steps=2000, log_every=50, eval_every=250,
                   best_metric='auc_rebalanced')
  if variant == 'smoke':
    config.width = 0.125
    config.prior_batches = 8
    config.optimizer.learning_rate = 1e-3
    configs.smoke(config, crop=64, num_steps=200, log_every=20, checkpoint_every=100)
  return config
