"""The command lines: `python run.py` (= the `colorjax` command, main.py) runs an
experiment; its subcommands colorize, evaluate and import_weights are a module each."""
