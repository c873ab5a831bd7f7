"""Elementwise GPU kernels over flat arrays (twins of kernels/cpu/elementwise.py): one thread per element."""
import math

from numba import cuda

from ._launch import kernel, launch


@kernel("T[:], T[:]")
def _relu(x, y):
    z = x.dtype.type(0)  # (constants in the arrays' type: an int or float literal would make this float64 work)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):  # grid-stride loop
        v = x[i]
        y[i] = z if v <= z else v


def relu_forward(x, y):
    launch(_relu, x.size, x, y)
    return y


@kernel("T[:], T[:], T[:]")
def _relu_backward(dy, x, dx):
    z = x.dtype.type(0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):  # grid-stride loop
        dx[i] = dy[i] if x[i] > z else z


def relu_backward(dy, x, dx):
    launch(_relu_backward, x.size, dy, x, dx)
    return dx


@kernel("T[:], T[:]")
def _tanh(x, y):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):  # grid-stride loop
        y[i] = math.tanh(x[i])


def tanh_forward(x, y):
    launch(_tanh, x.size, x, y)
    return y


@kernel("T[:], T[:], T[:]")
def _tanh_backward(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):  # grid-stride loop
        dx[i] = dy[i] * (one - y[i] * y[i])


def tanh_backward(dy, y, dx):
    launch(_tanh_backward, y.size, dy, y, dx)
    return dx


@kernel("T[:], T[:]")
def _sigmoid(x, y):
    z, one = x.dtype.type(0), x.dtype.type(1)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):  # grid-stride loop
        v = x[i]
        if v >= z:
            y[i] = one / (one + math.exp(-v))
        else:
            e = math.exp(v)
            y[i] = e / (one + e)


def sigmoid_forward(x, y):
    launch(_sigmoid, x.size, x, y)
    return y


@kernel("T[:], T[:], T[:]")
def _sigmoid_backward(dy, y, dx):
    one = y.dtype.type(1)
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):  # grid-stride loop
        dx[i] = dy[i] * y[i] * (one - y[i])


def sigmoid_backward(dy, y, dx):
    launch(_sigmoid_backward, y.size, dy, y, dx)
    return dx


@kernel("T[:,:], T[:]")
def _sum_rows(a, out):
    for j in range(cuda.grid(1), out.size, cuda.gridsize(1)):  # grid-stride loop
        acc = out[j]
        for i in range(a.shape[0]):
            acc += a[i, j]
        out[j] = acc


def sum_rows(a, out):
    launch(_sum_rows, out.size, a, out)
    return out


@kernel("T[:], T[:], T[:], f8, f8, f8, f8, b1, b1")
def _sgd(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    t = p.dtype.type  # the hyper-parameters in the parameters' type (float64 scalars would make it float64 work)
    lr, momentum, keep, weight_decay = t(lr), t(momentum), t(1) - t(dampening), t(weight_decay)
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):  # grid-stride loop
        d = g[i] + weight_decay * p[i]
        if momentum != 0:
            b = d if first else momentum * buf[i] + keep * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


def sgd_update(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    launch(_sgd, p.size, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first)
    return p


@kernel("T[:], T[:], T[:], T[:], f8, f8, f8, f8, f8, f8")
def _adam(p, g, m, v, step_size, beta1, beta2, eps, weight_decay, bc2_sqrt):
    t = p.dtype.type
    step_size, eps, weight_decay, bc2_sqrt = t(step_size), t(eps), t(weight_decay), t(bc2_sqrt)
    b1, c1, b2, c2 = t(beta1), t(1) - t(beta1), t(beta2), t(1) - t(beta2)
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):  # grid-stride loop
        d = g[i] + weight_decay * p[i]
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) / bc2_sqrt + eps)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    bc1 = 1 - beta1**step
    bc2_sqrt = math.sqrt(1 - beta2**step)
    launch(_adam, p.size, p, g, m, v, lr / bc1, beta1, beta2, eps, weight_decay, bc2_sqrt)
    return p
