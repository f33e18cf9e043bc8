"""numpy reference implementations: the oracles the C kernels are checked against.

Each forward returns (out, cache) and each backward takes (dout, cache), as in the lecture:
a layer is the pre-activation a = h W + b followed by g(a). Written for clarity, not speed."""
import numpy as np


def activation_forward(a, name):
    if name == "relu":
        h = np.maximum(a, 0)
    elif name == "tanh":
        h = np.tanh(a)
    elif name == "sigmoid":
        h = 1 / (1 + np.exp(-a))
    else:
        h = a.copy()
    return h, h


def activation_backward(dh, h, name):
    """dJ/da from dJ/dh and the saved output h."""
    derivative = {"relu": (h > 0).astype(h.dtype), "tanh": 1 - h ** 2,
                  "sigmoid": h * (1 - h)}.get(name, np.ones_like(h))
    return dh * derivative


def dense_forward(h, W, b, activation):
    a = h @ W + b
    out, _ = activation_forward(a, activation)
    return out, (h, W, out, activation)


def dense_backward(dout, cache):
    """(dh_in, dW, db) from dJ/d(output) of the layer."""
    h, W, out, activation = cache
    delta = activation_backward(dout, out, activation)
    return delta @ W.T, h.T @ delta, delta.sum(axis=0)


def output_loss(a, Y, output, sample_weight=None):
    """(weighted mean loss, dJ/da) of the output units fused with their loss."""
    n, k = a.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if output == "softmax":
        shifted = a - a.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses = -(Y * log_p).sum(axis=1)
        dloss = np.exp(log_p) * Y.sum(axis=1, keepdims=True) - Y
    elif output == "logistic":
        f = 1 / (1 + np.exp(-a))
        losses = (np.maximum(a, 0) - Y * a + np.log1p(np.exp(-np.abs(a)))).sum(axis=1)
        dloss = f - Y
    else:
        losses = 0.5 * ((a - Y) ** 2).sum(axis=1) / k
        dloss = (a - Y) / k
    return (w * losses).sum() / w.sum(), dloss * (w / w.sum())[:, None]


def output_forward(a, output):
    if output == "softmax":
        e = np.exp(a - a.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if output == "logistic":
        return 1 / (1 + np.exp(-a))
    return a


def network_forward(X, coefs, intercepts, activation, output):
    """The whole network at prediction: outputs (n, n_outputs)."""
    h = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        h, _ = dense_forward(h, W, b, activation)
    return output_forward(h @ coefs[-1] + intercepts[-1], output)


def network_loss_and_gradients(X, Y, coefs, intercepts, activation, output, alpha,
                               sample_weight=None):
    """J = weighted mean loss + (alpha / 2) * sum of squared weights, and its gradients."""
    caches, h = [], X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        h, cache = dense_forward(h, W, b, activation)
        caches.append(cache)
    a = h @ coefs[-1] + intercepts[-1]
    loss, delta = output_loss(a, Y, output, sample_weight)
    loss += 0.5 * alpha * sum((W ** 2).sum() for W in coefs)
    dcoefs = [h.T @ delta + alpha * coefs[-1]]
    dintercepts = [delta.sum(axis=0)]
    dh = delta @ coefs[-1].T
    for cache in reversed(caches):
        dh, dW, db = dense_backward(dh, cache)
        dcoefs.insert(0, dW + alpha * cache[1])
        dintercepts.insert(0, db)
    return loss, dcoefs, dintercepts


def standardize(X):
    """normalize="auto" by hand: real-valued columns to (x - mean) / std (ddof=0), a constant
    column only centered, columns whose values are all in {0, 1} left alone."""
    X = np.asarray(X, dtype=np.float64)
    mean, std = X.mean(axis=0), X.std(axis=0)
    binary = np.all((X == 0) | (X == 1), axis=0)
    out = X - np.where(binary, 0, mean)
    scale = np.where(binary | (std == 0), 1, std)
    return out / scale
