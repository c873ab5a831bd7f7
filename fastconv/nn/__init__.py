"""Layers, losses and the Module machinery (PyTorch-compatible parameter shapes and state-dict names)."""
from . import init
from .init import manual_seed
from .layers import AvgPool2D, Conv2D, Dropout, Flatten, Linear, MaxPool2D, ReLU, Sigmoid, Tanh
from .losses import CrossEntropyLoss, MSELoss
from .containers import Sequential
from .module import Module, Parameter
from .spec import build, spec

__all__ = [
    "AvgPool2D", "Conv2D", "CrossEntropyLoss", "Dropout", "Flatten", "Linear", "MSELoss", "MaxPool2D",
    "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh", "build", "init", "manual_seed", "spec",
]
