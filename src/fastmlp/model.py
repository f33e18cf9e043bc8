"""The fitted model as one object: the layout of the flat parameter buffer, the C view of the
architecture, the buffer itself, the input standardization and how outputs become predictions.

An estimator holds one `Model` and replaces it with a single assignment, so a predict that
took `model = estimator._model` reads one consistent network however a refit in another thread
goes: the old model or the new, never one's layout with the other's buffer. A model's parts
are never reassigned; only the values in its buffer change (training, or a user writing into
`coefs_`)."""
import os

import numpy as np
import scipy.sparse as sp

from . import _core
from ._config import blas_single_threaded

# Glorot draws in chunks of this many float64 values (512 KB): the same stream as one draw of
# the whole layer (RandomState's uniform is sequential), without a float64 copy of it. Chunks
# of 8 MB left ~9 MB resident after the fit's initialization (glibc serves a size from its heap
# once it freed a mapping of that size, and keeps the heap's top), 0.42x the parameters of
# 784-2048-2048-10 at the fit's peak; 512 KB chunks leave 1.5 MB and draw as fast
_DRAW_CHUNK = 1 << 16
# check_memory asks how much memory is left only for requests of this size or more
_CHECKED_BYTES = 1 << 28


def parameter_layout(units, batch_norm, n_normalized, tied=()):
    """Where every block sits in the flat buffer, in this order:
    W_0 .. W_{L-1} (the L2-penalized part) | b_0 .. b_{L-1} | gamma_l, beta_l of each hidden layer
    (the trainable part ends here) | running mean_l, var_l | input shift, scale (n_normalized each).
    units: (n_features, hidden..., n_outputs). tied: pairs (a, b) of weight layers, a < b, whose
    matrices are one shared matrix, W_b = W_a^T, each copy in its own slot (csrc/tied.c), as
    the table's "tied" (n_pairs, 2). Returns a dict of offset arrays and sizes."""
    units = [int(n) for n in units]
    tied = np.asarray(tied, dtype=np.int64).reshape(-1, 2)
    for a, b in tied:
        if not (0 <= a < b < len(units) - 1 and units[a] == units[b + 1]
                and units[a + 1] == units[b]):
            raise ValueError(f"weight layers {a} and {b} of units {units} cannot be tied: "
                             "W_b must have the shape of W_a's transpose")
    hidden = units[1:-1] if batch_norm else []
    sizes = [("w", [n_in * n_out for n_in, n_out in zip(units, units[1:])]),
             ("b", units[1:]), ("gamma", hidden), ("beta", hidden),  # trainable up to here
             ("mean", hidden), ("var", hidden)]
    layout, at = {}, 0
    for name, block in sizes:
        layout[name + "_offset"] = np.cumsum([at] + block[:-1], dtype=np.int64)[:len(block)]
        at += sum(block)
        if name == "w":
            layout["n_weights"] = at
        elif name == "beta":
            layout["n_trainable"] = at
    return dict(layout, units=np.asarray(units, np.int64), tied=tied, shift_offset=at,
                n_normalized=n_normalized, size=at + 2 * n_normalized)


def tied_partners(layout):
    """(n_trainable,) for each trainable parameter, the position of its other copy under the
    layout's tied pairs (W_b[j, i] for W_a[i, j] and back), or its own position when it is not
    tied: what moves together when a shared weight is perturbed (check_gradients), and what
    must hold the same value (fastmlp.load)."""
    partners = np.arange(int(layout["n_trainable"]), dtype=np.int64)
    units = layout["units"]
    for a, b in layout.get("tied", ()):
        n, m = int(units[a]), int(units[a + 1])
        # W_a (n, m) holds (i, j) at i * m + j, its copy W_b (m, n) at j * n + i
        in_a = np.arange(n * m, dtype=np.int64)
        in_b = np.arange(n * m, dtype=np.int64).reshape(m, n).T.ravel()
        partners[layout["w_offset"][a] + in_a] = layout["w_offset"][b] + in_b
        partners[layout["w_offset"][b] + in_b] = layout["w_offset"][a] + in_a
    return partners


def c_net(layout, spec, out_activation):
    """The C view of a network of `layout` (no parameters: it sizes workspaces before any is
    allocated, and Model holds one)."""
    return _core.Net(
        layout["units"], spec["activation"], out_activation, spec["dropout"],
        spec["batch_norm"], layout["w_offset"], layout["b_offset"], layout["gamma_offset"],
        layout["beta_offset"], layout["mean_offset"], layout["var_offset"],
        layout["n_weights"], layout["n_trainable"], layout.get("tied"))


class Model:
    """One network: `layout` (parameter_layout's table), `params` (the flat buffer), `spec`
    (activation, batch_norm, dropout as fitted), `out_activation`, and what turns outputs into
    predictions: `binarizer` (a LabelBinarizer, None for regression) and `y_1d`. Derived once:
    `net` (the C view), the views `x_shift`, `x_scale`, and at their first reading the views
    `coefs`, `intercepts`, `batchnorm` (a partial_fit makes a model per call, and only a
    user's reading of coefs_ needs the per-layer views: ~7 us of its Python side)."""

    __slots__ = ("layout", "params", "spec", "out_activation", "binarizer", "y_1d", "net",
                 "x_shift", "x_scale", "n_features", "n_outputs", "_predict", "_views")

    def __init__(self, layout, params, spec, out_activation, binarizer=None, y_1d=False,
                 net=None):
        self.layout, self.params, self.spec = layout, params, spec
        self.out_activation, self.binarizer, self.y_1d = out_activation, binarizer, y_1d
        self.net = net if net is not None else c_net(layout, spec, out_activation)
        units = layout["units"]
        self.n_features, self.n_outputs = int(units[0]), int(units[-1])
        # the bridge's predict for this dtype: a call of the fused one first dispatches on
        # the arrays' types, a tenth of the Python side of a one-row prediction
        self._predict = _core.predict["double" if params.dtype == np.float64 else "float"]
        n, start = layout["n_normalized"], layout["shift_offset"]
        self.x_shift = params[start:start + n] if n else None
        self.x_scale = params[start + n:start + 2 * n] if n else None

    @property
    def coefs(self):
        """The weight matrices, one (n_in, n_out) view of `params` per layer."""
        return self._layer_views()[0]

    @property
    def intercepts(self):
        """The biases, one (n_out,) view of `params` per layer."""
        return self._layer_views()[1]

    @property
    def batchnorm(self):
        """One dict of views per hidden layer (gamma, beta, running_mean, running_var), or
        None without batch norm."""
        return self._layer_views()[2]

    def _layer_views(self):
        """(coefs, intercepts, batchnorm), made at the first reading. Two threads reading
        them first at once may each make their own: views of the same buffer either way."""
        try:
            return self._views
        except AttributeError:
            pass
        layout, p = self.layout, self.params
        units = [int(u) for u in layout["units"]]
        coefs = [p[layout["w_offset"][l]:][:units[l] * units[l + 1]]
                 .reshape(units[l], units[l + 1]) for l in range(len(units) - 1)]
        intercepts = [p[layout["b_offset"][l]:][:units[l + 1]] for l in range(len(units) - 1)]
        batchnorm = None
        if self.spec["batch_norm"]:
            batchnorm = [
                {name: p[layout[key][l]:][:units[l + 1]]
                 for name, key in (("gamma", "gamma_offset"), ("beta", "beta_offset"),
                                   ("running_mean", "mean_offset"), ("running_var", "var_offset"))}
                for l in range(len(units) - 2)]
        self._views = coefs, intercepts, batchnorm
        return self._views

    def with_params(self, params, spec=None):
        """The same network on another buffer (and, given `spec`, another activation or
        dropout): what a warm-started fit or partial_fit trains while this one still serves."""
        spec = self.spec if spec is None else spec
        return Model(self.layout, params, spec, self.out_activation, self.binarizer, self.y_1d,
                     net=self.net if spec == self.spec else None)

    def input(self, X):
        return _core.Input(X, self.x_shift, self.x_scale, self.params.dtype)

    def forward(self, X, n_threads=1, check_finite=False):
        """The outputs (n, n_outputs) for validated rows X; with check_finite (a dense X
        whose finiteness is unknown), None when some row's first layer or output is not
        finite (the caller's validation of X then tells a NaN or inf from an overflow).
        Raises ValueError (nonfinite_outputs) when finite rows give outputs that are not."""
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.params.dtype)
        if X.shape[0] == 0:
            return out
        if self._predict(self.net, _core.Input(X, self.x_shift, self.x_scale, self.params.dtype),
                         self.params, out, n_threads, check_finite):
            return out
        if check_finite:
            return None
        raise nonfinite_outputs(out)

    def __reduce__(self):
        # the C view is rebuilt from the layout; the views follow the buffer
        return Model, (self.layout, self.params, self.spec, self.out_activation, self.binarizer,
                       self.y_1d)

    def __eq__(self, other):
        """The same network with bitwise the same parameters."""
        if not isinstance(other, Model):
            return NotImplemented
        return (self.spec == other.spec and self.out_activation == other.out_activation
                and self.y_1d == other.y_1d and self.layout.keys() == other.layout.keys()
                and all(np.array_equal(self.layout[k], other.layout[k]) for k in self.layout)
                and self.params.dtype == other.params.dtype
                and np.array_equal(self.params, other.params)
                and _same_binarizer(self.binarizer, other.binarizer))

    __hash__ = None


def nonfinite_outputs(out):
    """The ValueError of a forward pass whose outputs `out` (n, k) came out NaN or infinite
    from finite rows: the rows times the weights overflow the dtype in some layer. Rather
    than return them (NaN probabilities, inf predictions) the prediction is refused."""
    bad = int(np.count_nonzero(~np.isfinite(out).all(axis=1)))
    return ValueError(
        f"the network's outputs are not finite for {bad} of the {out.shape[0]} rows of X: "
        f"the inputs times this model's weights overflow {out.dtype.name} on their way "
        f"through the layers (X is too large for the model, or its weights grew huge in "
        f"training on unscaled data); standardize X (normalize='auto' does it when "
        f"fitting) or scale it down, and refit a model whose weights are huge")


def _same_binarizer(a, b):
    if a is None or b is None:
        return a is b
    return a.y_type_ == b.y_type_ and np.array_equal(a.classes_, b.classes_)


def new_model(layout, spec, out_activation, binarizer, y_1d, dtype, X, sample_weight, rng):
    """A fresh model of `layout`: Glorot uniform weights U(-b, b), b = sqrt(6 / (n_in +
    n_out)), drawn from `rng` into the model's dtype layer by layer (a tied layer is not
    drawn: it starts as the transpose of its partner's draw); biases and beta 0, gamma and
    running variances 1; the input standardization from X's columns when the layout has
    one."""
    units = [int(u) for u in layout["units"]]
    n_normalized = layout["n_normalized"]
    params = np.zeros(layout["size"], dtype=dtype)
    copies = {int(b): int(a) for a, b in layout.get("tied", ())}
    for l in range(len(units) - 1):
        if l in copies:
            continue
        bound = np.sqrt(6.0 / (units[l] + units[l + 1]))
        start, size = int(layout["w_offset"][l]), units[l] * units[l + 1]
        for at in range(0, size, _DRAW_CHUNK):
            n = min(_DRAW_CHUNK, size - at)
            params[start + at:start + at + n] = rng.uniform(-bound, bound, n)
    for b, a in copies.items():
        W_a = params[layout["w_offset"][a]:][:units[a] * units[a + 1]]
        params[layout["w_offset"][b]:][:units[a] * units[a + 1]] = \
            W_a.reshape(units[a], units[a + 1]).T.ravel()
    for l in range(len(layout["gamma_offset"])):
        params[layout["gamma_offset"][l]:][:units[l + 1]] = 1
        params[layout["var_offset"][l]:][:units[l + 1]] = 1
    if n_normalized:
        shift, scale = standardization(X, sample_weight, dtype)
        start = layout["shift_offset"]
        params[start:start + n_normalized] = shift
        params[start + n_normalized:start + 2 * n_normalized] = scale
    return Model(layout, params, spec, out_activation, binarizer, y_1d)


def standardization(X, sample_weight, dtype):
    """(shift, scale) in float64 with x' = (x - shift) * scale: the mean and 1 / the population
    std of each column. Binary columns ({0, 1}) stay as they are; a constant column, or one
    whose 1 / std is beyond `dtype` (float32 {0, 1e-40}: std 5e-41), is only centered."""
    mean, std, binary = column_statistics(X, sample_weight, dtype)
    with np.errstate(divide="ignore", over="ignore"):
        inverse = 1.0 / std
    constant = ~(inverse <= np.finfo(dtype).max)  # std 0 (inf) or an underflowed std
    scale = np.where(binary | constant, 1.0, inverse)
    return np.where(binary, 0.0, mean), scale


def column_statistics(X, sample_weight=None, dtype=None):
    """Per-column mean, population std (ddof=0) and whether every value is 0 or 1, in float64,
    in chunks of rows so that no temporary the size of X is made (sparse X stays sparse), of X
    as the model reads it: rounded to `dtype` (X's own when None) first.
    With sample_weight (n,) these are the weighted statistics, rows of weight 0 ignored: the
    same as for the data with each row repeated w times (frequency weights)."""
    n, d = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = w.sum()
    if sp.issparse(X):
        return _sparse_column_statistics(X.tocsc(), w, total, dtype)
    # the column sums (w @ chunk) on one BLAS thread: OpenBLAS splits that product over its
    # threads from ~9k values, gains nothing on a memory-bound sum (66 ms either way for
    # 20000 x 784 float32), and its idle threads spin between the chunks' calls; beside a busy
    # loop on the other core that took 145-217 ms (quiet, median of 10 fits' setup). And its
    # sums' bits then depended on BLAS's thread count (5000 x 100: 4 columns' last bits)
    with blas_single_threaded():
        return _dense_column_statistics(X, w, total, dtype)


def _dense_column_statistics(X, w, total, dtype):
    """column_statistics of an array (n, d), in chunks of rows."""
    n, d = X.shape
    mean, largest = np.zeros(d), np.zeros(d)
    # ~0.5M values (4 MB in float64) per chunk: the chunk's float64 copy, its centered copy and
    # the masks stay near 10 MB, within the 10% of X that fit may add (60000 x 784 float32 is
    # 188 MB), and the chunks are still long enough for numpy to run at full speed
    step = max(1, (1 << 19) // max(d, 1))
    for start in range(0, n, step):
        # C-ordered, whatever X's order: a product's sums run in an order set by the layout
        chunk = np.ascontiguousarray(X[start:start + step], dtype=dtype or X.dtype)
        mean += w[start:start + step] @ chunk.astype(np.float64, copy=False)
        if chunk.size:
            # max and -min are reductions: no temporary the size of the chunk
            largest = np.maximum(largest, np.maximum(chunk.max(axis=0), -chunk.min(axis=0)))
    mean /= total
    unit = _square_unit(largest)
    sq = np.zeros(d)
    binary = np.ones(d, dtype=bool)
    for start in range(0, n, step):
        chunk = np.ascontiguousarray(X[start:start + step], dtype=dtype or X.dtype)
        w_chunk = w[start:start + step]
        centered = chunk - mean
        centered /= unit  # in place: one temporary of the chunk's size, as before
        sq += np.einsum("ij,ij,i->j", centered, centered, w_chunk)
        binary &= ((chunk == 0) | (chunk == 1) | (w_chunk[:, None] == 0)).all(axis=0)
    return mean, unit * np.sqrt(sq / total), binary


def _sparse_column_statistics(X, w, total, dtype):
    """column_statistics of a CSC matrix from its stored values alone (no dense copy), as the
    dense path computes them: in float64 (X.multiply(X) in float32 overflowed from |x| near
    2e19, a std of inf and a scale of 0) and centered (E[x^2] - E[x]^2 cancels), the squares of
    a huge column divided by a power of two (1e300 squared overflowed float64 too): the
    stored values' weighted squared deviations plus those of the zeros not stored, each
    (0 - mean)^2 times their weight."""
    d = X.shape[1]
    values = X.data.astype(dtype or X.dtype, copy=False).astype(np.float64, copy=False)
    column = np.repeat(np.arange(d), np.diff(X.indptr))
    w_stored = w[X.indices]  # CSC: indices are rows
    mean = np.bincount(column, weights=w_stored * values, minlength=d) / total
    largest = np.zeros(d)
    starts = X.indptr[:-1][np.diff(X.indptr) > 0]  # reduceat's segments: non-empty columns
    if len(starts):
        largest[np.diff(X.indptr) > 0] = np.maximum.reduceat(np.abs(values), starts)
    unit = _square_unit(largest)
    centered = (values - mean[column]) / unit[column]
    zeros_weight = total - np.bincount(column, weights=w_stored, minlength=d)
    sq = np.bincount(column, weights=w_stored * centered * centered, minlength=d) \
        + np.maximum(zeros_weight, 0.0) * (mean / unit) ** 2
    binary = np.ones(d, dtype=bool)
    binary[column[(values != 0) & (values != 1) & (w_stored > 0)]] = False
    return mean, unit * np.sqrt(sq / total), binary


def _square_unit(largest):
    """Per column, what its values are divided by before they are squared: a power of two
    (exact) for columns whose squares would overflow (|x| near 1e300: the std became inf and
    the scale 1 / inf = 0), 1 for the others (their bits unchanged)."""
    return np.where(largest > _SQUARE_SAFE, np.ldexp(1.0, np.frexp(largest)[1]), 1.0)


_SQUARE_SAFE = 1e150  # a sum of squares of values below this cannot overflow float64


def check_memory(layout, dtype, workspace, copies):
    """Refuse, before allocating, a model whose buffers cannot fit in this machine's memory:
    the parameters `copies` times (the buffer, the optimizer state, the gradient where one is
    stored, early stopping's copy of the best epoch: optim.fit_copies), plus `workspace`
    values. Raises MemoryError naming the sizes."""
    itemsize = np.dtype(dtype).itemsize
    needed = (copies * int(layout["size"]) + int(workspace)) * itemsize
    if needed < _CHECKED_BYTES:
        return  # asking the kernel costs more than a small partial_fit's Python side
    available = _available_memory()
    if available is not None and needed > available:
        raise MemoryError(
            f"this network has {int(layout['size']):,} parameters "
            f"({int(layout['size']) * itemsize / 2**30:.2f} GiB in {np.dtype(dtype).name}); "
            f"training it needs about {needed / 2**30:.2f} GiB and this machine has "
            f"{available / 2**30:.2f} GiB available: use fewer or smaller hidden layers")


def _available_memory():
    """Bytes that can still be allocated: MemAvailable plus free swap (Linux), else None."""
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        kib = int(fields["MemAvailable"].split()[0]) + int(fields["SwapFree"].split()[0])
        return kib * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
