"""CUDA kernels (numba.cuda), twins of ``kernels/cpu``: ``plan`` holds the op-level entry points, with the
same names and arguments as the CPU target's, taking and returning device arrays. Importing this needs
numba-cuda (``pip install "fastconv[cuda]"``)."""
