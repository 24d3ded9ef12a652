"""One module per model family; shared blocks live in layers.py."""
