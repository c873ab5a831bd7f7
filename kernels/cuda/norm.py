"""Batch normalisation and global average pooling on the GPU, twins of kernels/cpu/norm.py: the statistics
and the backward's sums take one thread per channel (two passes, float64 sums: no atomics, the same result
every run), the elementwise parts one thread per element."""
from numba import cuda

from ._launch import kernel, launch


@kernel("T[:,:,:], f8[:], f8[:]")
def _stats(xf, mean, var):
    N, C, HW = xf.shape
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):  # grid-stride loop over channels
        s = 0.0
        for n in range(N):
            for j in range(HW):
                s += xf[n, c, j]
        mu = s / (N * HW)
        d2 = 0.0
        for n in range(N):
            for j in range(HW):
                d = xf[n, c, j] - mu
                d2 += d * d
        mean[c] = mu
        var[c] = d2 / (N * HW)


def batch_norm_stats(x, mean, var):
    N, C, H, W = x.shape
    launch(_stats, C, x.reshape(N, C, H * W), mean, var)
    return mean


@kernel("T[:,:,:], T[:], T[:], T[:,:,:], b1")
def _apply(xf, scale, shift, yf, relu):
    N, C, HW = xf.shape
    for i in range(cuda.grid(1), N * C * HW, cuda.gridsize(1)):  # grid-stride loop
        j = i % HW
        c = (i // HW) % C
        n = i // (C * HW)
        v = xf[n, c, j] * scale[c] + shift[c]
        if relu and v < 0:
            v = 0
        yf[n, c, j] = v


def batch_norm_apply(x, scale, shift, y, relu):
    N, C, H, W = x.shape
    launch(_apply, x.size, x.reshape(N, C, H * W), scale, shift, y.reshape(N, C, H * W), relu)
    return y


@kernel("T[:,:,:], T[:,:,:], f8[:], f8[:], T[:], T[:], b1, T[:], T[:]")
def _backward_sums(gf, xf, mean, invstd, scale, shift, relu, dweight, dbias):
    N, C, HW = xf.shape
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):  # grid-stride loop over channels
        sg = 0.0
        sgx = 0.0
        for n in range(N):
            for j in range(HW):
                x = xf[n, c, j]
                g = gf[n, c, j]
                if relu and not x * scale[c] + shift[c] > 0:
                    g = 0
                sg += g
                sgx += g * (x - mean[c]) * invstd[c]
        dweight[c] = sgx
        dbias[c] = sg


def batch_norm_backward_sums(dy, x, mean, invstd, scale, shift, relu, dweight, dbias):
    N, C, H, W = x.shape
    launch(_backward_sums, C, dy.reshape(N, C, H * W), x.reshape(N, C, H * W), mean, invstd, scale, shift, relu,
           dweight, dbias)
    return dweight


@kernel("T[:,:,:], T[:,:,:], f8[:], f8[:], T[:], T[:], T[:], b1, i8, T[:], T[:], T[:,:,:]")
def _backward_dx(gf, xf, mean, invstd, weight, scale, shift, relu, M, dweight, dbias, df):
    N, C, HW = xf.shape
    for i in range(cuda.grid(1), N * C * HW, cuda.gridsize(1)):  # grid-stride loop
        j = i % HW
        c = (i // HW) % C
        n = i // (C * HW)
        x = xf[n, c, j]
        g = gf[n, c, j]
        if relu and not x * scale[c] + shift[c] > 0:
            g = 0
        if M > 0:  # the batch's statistics
            g = g - dbias[c] / M - (x - mean[c]) * invstd[c] * dweight[c] / M
        df[n, c, j] = weight[c] * invstd[c] * g


def batch_norm_backward_dx(dy, x, mean, invstd, weight, scale, shift, relu, M, dweight, dbias, dx):
    N, C, H, W = x.shape
    launch(_backward_dx, x.size, dy.reshape(N, C, H * W), x.reshape(N, C, H * W), mean, invstd, weight, scale, shift,
           relu, M, dweight, dbias, dx.reshape(N, C, H * W))
    return dx


def batch_norm_backward(dy, x, mean, invstd, weight, scale, shift, relu, M, dweight, dbias, dx):
    """The sums, then dx from them (two launches: dx needs the sums of every block of a channel)."""
    batch_norm_backward_sums(dy, x, mean, invstd, scale, shift, relu, dweight, dbias)
    return batch_norm_backward_dx(dy, x, mean, invstd, weight, scale, shift, relu, M, dweight, dbias, dx)


@kernel("T[:,:], T[:]")
def _gap_forward(xf, yf):
    NC, HW = xf.shape
    for i in range(cuda.grid(1), NC, cuda.gridsize(1)):  # grid-stride loop over planes
        s = 0.0
        for j in range(HW):
            s += xf[i, j]
        yf[i] = s / HW


def global_avg_pool_forward(x, y):
    N, C, H, W = x.shape
    launch(_gap_forward, N * C, x.reshape(N * C, H * W), y.reshape(N * C))
    return y


@kernel("T[:], T[:,:]")
def _gap_backward(gf, df):
    NC, HW = df.shape
    for i in range(cuda.grid(1), NC * HW, cuda.gridsize(1)):  # grid-stride loop
        df[i // HW, i % HW] = gf[i // HW] / HW


def global_avg_pool_backward(dy, dx):
    N, C, H, W = dx.shape
    launch(_gap_backward, dx.size, dy.reshape(N * C), dx.reshape(N * C, H * W))
    return dx
