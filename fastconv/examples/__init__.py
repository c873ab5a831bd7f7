"""Short, complete scripts that use the public API: ``python -m fastconv.examples.train_lenet``."""
