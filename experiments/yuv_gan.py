"""Cao et al. 2017: conditional YUV GAN with multilayer noise, diverse colorizations."""

import ml_collections

from colorjax import configs

VARIANTS = ('wgan', 'authors', 'wgan_gp', 'smoke')


def _adam(learning_rate, b1=0.5, b2=0.999):
  return configs.optimizer('adam', learning_rate, b1=b1, b2=b2)


def _tf1_rmsprop(learning_rate):
  """TensorFlow 1's RMSPropOptimizer(decay=0.9), which the authors' release trains with: eps
  1e-10 inside the square root, the squared-gradient average starting at 1, no momentum."""
  return configs.optimizer('rmsprop', learning_rate, decay=0.9, eps=1e-10, eps_in_sqrt=True,
                           initial_scale=1.0)


def get_config(variant=None):
  """The write-up: its networks, BCE, Adam 2e-4 (beta1 0.5), STL-10 at 64x64, batch 64, noise
  before the first 3 convs. 'authors': the release (ccyyatnet/COLORGAN, wgan/): its networks
  and scaled YCbCr (models/yuv_gan.LAYOUTS), WGAN with weights clipped to 0.01, 5 critic
  updates per generator update, TF1 RMSProp D 2e-4 / G 1e-4, noise once. 'wgan': the
  write-up's networks trained as the release trains. 'wgan_gp': gradient penalty instead of
  clipping. 'smoke': about a minute on CPU with the bundled photos."""
  config = ml_collections.ConfigDict()
  config.program = 'yuv_gan'
  config.networks = 'writeup'      # writeup | authors (models/yuv_gan.LAYOUTS)
  config.adversarial = 'bce'       # bce (non-saturating) | wgan (weight clipping) | wgan_gp
  config.noise_layers = 3          # noise plane before the first N convs (1 to 5)
  config.l1_weight = 0.0           # weight of mean |UV - true UV| in the generator loss
  config.n_critic = 1              # critic updates per generator update, each on 1/n of a batch
  config.clip = 0.01               # wgan: every critic weight clipped to [-clip, clip]
  config.gp_weight = 10.0          # wgan_gp: lambda of the gradient penalty
  config.discriminator_batch_norm = True
  config.seed = 0
  config.compute_dtype = 'float32'  # float32 | bfloat16: mixed precision (colorjax/precision.py)
  # STL-10 train+unlabelled (105,000 images of 96x96), resized to 64x64 (crop = the size).
  config.data = configs.data_config(source='stl10', crop=64, batch_size=64, eval_batch_size=64)
  config.generator_optimizer = _adam(2e-4)
  config.discriminator_optimizer = _adam(2e-4)
  # 100,000 steps: about 60 epochs of STL-10 train+unlabelled.
  configs.schedule(config, num_steps=100_000, checkpoint_every=5_000, eval_batches=16)
  config.samples = 5               # noise samples per eval image (diversity, grid columns)
  if variant in ('wgan', 'authors', 'wgan_gp'):
    config.adversarial = 'wgan_gp' if variant == 'wgan_gp' else 'wgan'
    config.n_critic = 5
    config.data.batch_size = 64 * config.n_critic  # 64 fresh real images per critic update
  if variant in ('wgan', 'authors'):
    config.noise_layers = 1
    config.generator_optimizer = _tf1_rmsprop(1e-4)
    config.discriminator_optimizer = _tf1_rmsprop(2e-4)
  if variant == 'authors':
    config.networks = 'authors'
  if variant == 'wgan_gp':  # Gulrajani et al.'s settings; no BatchNorm in the critic
    config.discriminator_batch_norm = False
    config.generator_optimizer = _adam(1e-4, b1=0.0, b2=0.9)
    config.discriminator_optimizer = _adam(1e-4, b1=0.0, b2=0.9)
  if variant == 'smoke':
    configs.smoke(config, crop=32, num_steps=40, log_every=10, checkpoint_every=20, samples=3)
  return config
