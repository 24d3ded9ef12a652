"""Run an experiment: python run.py --experiment=NAME[:VARIANT] [--config.key=value ...].

`python run.py --help` lists the experiments and options; `python run.py colorize --help`
colorizes image files with a trained run. The same as the `colorjax` command (colorjax/cli.py).
"""

from colorjax import cli

if __name__ == '__main__':
  cli.run()
