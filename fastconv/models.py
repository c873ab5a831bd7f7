"""Ready-made networks."""
from .nn import BatchNorm2D, Conv2D, Flatten, GlobalAvgPool2D, Linear, MaxPool2D, ReLU, Residual, Sequential


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


def _block(cin, cout, stride):
    """A basic residual block: two 3x3 convolutions with BatchNorm, a projection shortcut (1x1 conv and
    BatchNorm) where the shape changes, and the ReLU after the sum."""
    body = Sequential(Conv2D(cin, cout, 3, stride=stride, padding=1, bias=False), BatchNorm2D(cout), ReLU(),
                      Conv2D(cout, cout, 3, padding=1, bias=False), BatchNorm2D(cout))
    shortcut = None if stride == 1 and cin == cout else \
        Sequential(Conv2D(cin, cout, 1, stride=stride, bias=False), BatchNorm2D(cout))
    return Sequential(Residual(body, shortcut), ReLU())


def resnet20(num_classes=10, in_channels=3):
    """ResNet-20 for small images (He et al. 2016, section 4.2: 3 stages of 3 blocks, 16-32-64 channels),
    with projection shortcuts where the shape changes; state-dict keys read like "3.0.body.1.running_mean"
    and "6.0.shortcut.0.weight" (0.27 M parameters)."""
    return Sequential(
        Conv2D(in_channels, 16, 3, padding=1, bias=False), BatchNorm2D(16), ReLU(),
        _block(16, 16, 1), _block(16, 16, 1), _block(16, 16, 1),
        _block(16, 32, 2), _block(32, 32, 1), _block(32, 32, 1),
        _block(32, 64, 2), _block(64, 64, 1), _block(64, 64, 1),
        GlobalAvgPool2D(), Flatten(), Linear(64, num_classes),
    )


MODELS = {"lenet5": lenet5, "resnet20": lambda num_classes=10: resnet20(num_classes, in_channels=1)}
