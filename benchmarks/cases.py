"""The benchmark shapes (float32): LeNet-5's layers, three larger layers typical of image models, a depthwise
and a grouped layer, and a BatchNorm layer."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ConvCase:
    name: str
    N: int
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def out(self):
        P = (self.H + 2 * self.padding - self.R) // self.stride + 1
        Q = (self.W + 2 * self.padding - self.S) // self.stride + 1
        return P, Q

    @property
    def flops(self):
        """Multiply-adds times two; the same for forward, dX and dW."""
        P, Q = self.out
        return 2 * self.N * self.K * P * Q * (self.C // self.groups) * self.R * self.S

    def __str__(self):
        g = f" g{self.groups}" if self.groups > 1 else ""
        return f"{self.name} (N={self.N}, {self.C}->{self.K}, {self.R}x{self.S}, {self.H}x{self.W}, s{self.stride} p{self.padding}{g})"


@dataclass(frozen=True)
class PoolCase:
    name: str
    N: int
    C: int
    H: int
    W: int
    k: int
    s: int

    def __str__(self):
        return f"{self.name} (N={self.N}, C={self.C}, {self.H}x{self.W}, {self.k}x{self.k} s{self.s})"


@dataclass(frozen=True)
class NormCase:
    name: str
    N: int
    C: int
    H: int
    W: int

    def __str__(self):
        return f"{self.name} (N={self.N}, C={self.C}, {self.H}x{self.W})"


CONV = [
    ConvCase("lenet_c1", 64, 1, 6, 28, 28, 5, 5, 1, 2),
    ConvCase("lenet_c2", 64, 6, 16, 14, 14, 5, 5),
    ConvCase("mid", 32, 32, 64, 28, 28, 3, 3, 1, 1),
    ConvCase("vgg", 8, 64, 64, 56, 56, 3, 3, 1, 1),
    ConvCase("stem", 16, 3, 32, 64, 64, 7, 7, 2, 3),
    ConvCase("depthwise", 16, 32, 32, 56, 56, 3, 3, 1, 1, groups=32),
    ConvCase("grouped", 16, 64, 64, 28, 28, 3, 3, 1, 1, groups=4),
]

NORM = [NormCase("batchnorm", 32, 64, 28, 28)]

POOL = [
    PoolCase("lenet_2x2", 64, 6, 28, 28, 2, 2),
    PoolCase("lenet_3x3s2", 64, 6, 28, 28, 3, 2),
    PoolCase("mid_2x2", 32, 64, 28, 28, 2, 2),
    PoolCase("mid_3x3s2", 32, 64, 28, 28, 3, 2),
]

CONV_PASSES = ("forward", "dx", "dw")
POOL_PASSES = ("max_forward", "max_backward", "avg_forward", "avg_backward")
NORM_PASSES = ("forward", "backward")
