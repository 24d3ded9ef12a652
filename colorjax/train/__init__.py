"""The generic trainer: optimizer (optim), state and step (train_state), the resumable loop
(loop, configured by configs.Loop), checkpoints, the metrics log, monitoring (throughput,
tensorboard, profiler), one run per workdir (workdirs), single-network training
(supervised) and the losses."""
