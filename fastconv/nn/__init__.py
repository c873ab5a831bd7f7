"""Layers, losses and the Module machinery (PyTorch-compatible parameter shapes and state-dict names)."""
from . import init
from .containers import Residual, Sequential
from .init import manual_seed
from .layers import AvgPool2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Tanh
from .losses import CrossEntropyLoss, MSELoss
from .module import Module, Parameter
from .norm import BatchNorm2D, GlobalAvgPool2D
from .spec import build, spec
from .spec import state_shapes as spec_state_shapes

__all__ = [
    "AvgPool2D", "BatchNorm2D", "Conv2D", "CrossEntropyLoss", "Dropout", "Flatten", "GlobalAvgPool2D", "Linear",
    "MSELoss", "MaxPool2D", "Module", "Parameter", "ReLU", "Residual", "Sequential", "Sigmoid", "Tanh", "build",
    "init", "manual_seed", "spec",
]
