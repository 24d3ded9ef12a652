"""ResNet-18 colorizer with its encoder pretrained as a Flowers-102 classifier, vs scratch."""

import ml_collections

from colorjax import configs

VARIANTS = ('smoke',)


def _stage(data, optimizer, epochs):
  stage = ml_collections.ConfigDict()
  stage.data = data
  stage.optimizer = configs.optimizer(**optimizer)
  stage.seed = 0
  return configs.schedule(stage, epochs=epochs, log_every=10, checkpoint_every=500)


def get_config(variant=None):
  """The write-up: oxford_flowers102 at 224x224, classifier first; colorizer with SGD lr 0.01,
  momentum 0.9, Nesterov, weight decay 1e-5, batch 32, 30 epochs, MSE. 'smoke': all three
  stages on the bundled photos (their index as the label) in about a minute."""
  config = ml_collections.ConfigDict()
  config.program = 'flowers_resnet'
  config.num_classes = 102
  # float32 | bfloat16 (colorjax/precision.py), for all three stages: the colorizer runs the
  # encoder the classifier trained in the precision it trained it in.
  config.compute_dtype = 'float32'
  flowers = configs.data_config(source='oxford_flowers102', crop=224, batch_size=32,
                                eval_batch_size=32)
  # The write-up gives no classifier settings; Adam with a decaying step size is a safe choice.
  config.classifier = _stage(flowers, dict(name='adam', learning_rate=1e-3), epochs=60)
  config.colorizer = _stage(flowers, dict(name='sgd', learning_rate=0.01, momentum=0.9,
                                          nesterov=True, weight_decay=1e-5), epochs=30)
  if variant == 'smoke':
    for stage in (config.classifier, config.colorizer):
      configs.smoke(stage, crop=32, num_steps=20)
  return config
