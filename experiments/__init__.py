"""Experiment configs: each module has a one-line docstring and get_config()."""
