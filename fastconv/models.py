"""Ready-made networks."""
from .nn import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential


def lenet5(num_classes=10):
    """LeNet-5 for 1x28x28 digits, with ReLU and max pooling in place of the original tanh and subsampling:

    Conv2D(1,6,5,padding=2), ReLU, MaxPool2D(2), Conv2D(6,16,5), ReLU, MaxPool2D(2), Flatten,
    Linear(400,120), ReLU, Linear(120,84), ReLU, Linear(84,num_classes).
    """
    return Sequential(
        Conv2D(1, 6, 5, padding=2), ReLU(), MaxPool2D(2),
        Conv2D(6, 16, 5), ReLU(), MaxPool2D(2),
        Flatten(),
        Linear(400, 120), ReLU(),
        Linear(120, 84), ReLU(),
        Linear(84, num_classes),
    )


MODELS = {"lenet5": lenet5}
