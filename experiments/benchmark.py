"""Speed: tiny-CNN step per conv formulation, Zhang et al. and YUV GAN steps, input pipeline."""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.program = 'benchmark'
  config.image = 'coffee'
  config.sizes = ('400x600', '100x150')  # HxW; 400x600 is the full coffee photo
  config.formulations = ('taps', 'nhwc')  # layers.py: unrolled taps / conv3x3_nhwc
  config.channels = 6
  config.steps = 50                       # timed iterations, after one compiled warm-up call
  config.repeats = 3                      # best of
  # Input pipeline alone: SOURCE_SIZE:CROP cases, records stored as arrays, PNG or JPEG.
  config.pipeline_cases = ('96:64', '256:176')
  config.pipeline_formats = ('array', 'png', 'jpeg')
  config.pipeline_examples = 1024         # distinct source images (crops of bundled photos)
  config.pipeline_batch_size = 64
  config.pipeline_batches = 100           # timed batches, after 5 warm-up batches
  config.pipeline_tf = True               # the tf.data reference column (if tensorflow imports)
  config.resume_step = 2_000_000          # resume cost: first batch at this step vs step 0
  # Training step of the full-width Zhang et al. network (softmax head), images/s.
  config.compute_dtype = 'float32'  # the Zhang and GAN steps' precision (colorjax/precision.py)
  config.zhang_sizes = ('64x64', '176x176')
  config.zhang_batch_size = 8
  config.zhang_width = 1.0
  config.zhang_steps = 3
  # Training step of the YUV GAN (critic + generator update), images/s.
  config.gan_size = 64                    # 0 skips the GAN
  config.gan_batch_size = 64
  config.gan_steps = 3
  # MFU's peak TFLOP/s per device; 0: the dense bf16 peak of a known device
  # (throughput.PEAK_TFLOPS: H100/H200 989, A100 312), none on CPU ('-').
  config.peak_tflops = 0.0
  return config
