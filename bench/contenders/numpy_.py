"""A hand-written numpy training loop, float32, as a careful user would write it: buffers
allocated once, GEMMs into them with out=, relu and softmax in place; BLAS at `threads`."""
import numpy as np


class Trainer:
    def __init__(self, hidden, batch, X, y, threads):
        from threadpoolctl import threadpool_limits
        from common import LEARNING_RATE, MOMENTUM, units
        self.version = np.__version__
        self.limits = threadpool_limits(threads)
        self.lr, self.momentum = np.float32(LEARNING_RATE), np.float32(MOMENTUM)
        self.X, self.y, self.batch = X, y, batch
        self.samples_per_epoch = X.shape[0]
        self.rng = np.random.default_rng(0)
        u = units(hidden)
        self.W, self.b = [], []
        for n_in, n_out in zip(u[:-1], u[1:]):
            bound = np.sqrt(6.0 / (n_in + n_out))
            self.W.append(self.rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32))
            self.b.append(np.zeros(n_out, np.float32))
        self.vW = [np.zeros_like(W) for W in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        # activation of layer i is (batch, u[i]); deltas (batch, u[i]) for i >= 1
        self.act = [np.empty((batch, n), np.float32) for n in u]
        self.delta = [np.empty((batch, n), np.float32) for n in u]
        self.gW = [np.empty_like(W) for W in self.W]
        self.loss = np.nan

    def step(self, rows):
        m = len(rows)
        act = [a[:m] for a in self.act]
        delta = [d[:m] for d in self.delta]
        np.take(self.X, rows, axis=0, out=act[0])
        last = len(self.W) - 1
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            np.matmul(act[i], W, out=act[i + 1])
            act[i + 1] += b
            if i < last:
                np.maximum(act[i + 1], 0, out=act[i + 1])
        # softmax + cross-entropy: delta = (p - onehot) / m
        out = act[-1]
        out -= out.max(axis=1, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        yb = self.y[rows]
        d = delta[-1]
        d[...] = out
        self.loss = -np.log(np.maximum(out[np.arange(m), yb], 1e-30)).mean()
        d[np.arange(m), yb] -= 1
        d *= np.float32(1.0 / m)
        for i in range(last, -1, -1):
            np.matmul(act[i].T, delta[i + 1], out=self.gW[i])
            gb = delta[i + 1].sum(axis=0)
            if i > 0:
                np.matmul(delta[i + 1], self.W[i].T, out=delta[i])
                delta[i] *= act[i] > 0  # relu derivative from the saved activation
            # v = momentum * v + g; p -= lr * v
            self.vW[i] *= self.momentum
            self.vW[i] += self.gW[i]
            self.W[i] -= self.lr * self.vW[i]
            self.vb[i] *= self.momentum
            self.vb[i] += gb
            self.b[i] -= self.lr * self.vb[i]

    def run(self, k):
        n = self.X.shape[0]
        for _ in range(k):
            order = self.rng.permutation(n)
            for start in range(0, n, self.batch):
                self.step(order[start:start + self.batch])

    def extra(self):
        return {"final_loss": float(self.loss)}


def trainer(hidden, batch, X, y, threads):
    return Trainer(hidden, batch, X, y, threads)


def version():
    return np.__version__
