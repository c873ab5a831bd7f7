"""Train LeNet-5 on the bundled digits with the public API: the loop to copy into your own code.

    python -m fastconv.examples.train_lenet [epochs]
"""
import sys

import numpy as np

from fastconv import data, nn, optim
from fastconv.models import lenet5


def main(epochs=8, batch_size=64, seed=0):
    split = data.load_digits()  # 4,000 training and 1,000 test digits, uint8 (N, 28, 28)
    x_train, x_test = data.to_input(split.x_train), data.to_input(split.x_test)  # float32 (N, 1, 28, 28)
    nn.manual_seed(seed)
    model = lenet5()
    crit = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            model.zero_grad()
            loss = crit(model(x_train[idx]), split.y_train[idx])
            model.backward(crit.backward())
            opt.step()
        model.eval()
        predicted = np.argmax(model(x_test), axis=1)
        accuracy = float(np.mean(predicted == split.y_test))
        print(f"epoch {epoch + 1}/{epochs}: last batch loss {loss:.4f}, test accuracy {100 * accuracy:.1f}%")
    print(f"test accuracy: {100 * accuracy:.1f}%")
    return accuracy


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:2]])
