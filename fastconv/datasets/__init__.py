"""Data shipped with fastconv: ``digits.npz``, 5,000 MNIST digits (see README.md beside it)."""
