# The only bridge between Python and the C kernels of csrc/. Typed memoryviews in, the GIL
# released, csrc called. Everything arriving here was validated by the estimator (network.py):
# shapes agree, arrays are C-contiguous in the model's dtype (a dense X: float32 or float64 in
# any memory order, which the C side converts row by row), indices are in range.
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.math cimport INFINITY, sqrt
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.pycapsule cimport PyCapsule_GetPointer
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv
from cython cimport floating

import numpy as np
cimport numpy as cnp
import scipy.sparse as sp

cnp.import_array()

cdef extern from "numpy/random/bitgen.h":
    ctypedef struct bitgen_t:
        void *state  # the generator's own state struct (MT19937: uint32 key[624], int pos)

cdef extern from "fastmlp.h" nogil:
    enum:
        FASTMLP_ENONFINITE
        FASTMLP_FLOAT32
        FASTMLP_FLOAT64
    ctypedef struct fastmlp_net:
        int n_layers
        const int *units
        int activation
        int output
        const double *dropout
        int batch_norm
        const int64_t *w_offset
        const int64_t *b_offset
        const int64_t *gamma_offset
        const int64_t *beta_offset
        const int64_t *mean_offset
        const int64_t *var_offset
        int64_t n_weights
        int64_t n_trainable
        int corruption
        double corruption_level
        int n_tied
        const int *tied

    ctypedef struct fastmlp_health:
        int64_t *count
        double *sum
        int64_t hidden_units
        double margin
        double *norms

    int fastmlp_work_parts(int64_t n_weights, int64_t B, int most)
    int64_t fastmlp_epoch_batches(int64_t n, int64_t batch_size, int batch_norm)
    int fastmlp_state_slots(int solver)

    ctypedef struct fastmlp_optim:
        int solver
        int schedule
        double learning_rate
        double power_t
        double momentum
        int nesterov
        double beta_1
        double beta_2
        double rho
        double epsilon
        double alpha

    ctypedef struct fastmlp_input_f32:
        const void *dense
        int dense_type
        int64_t row_stride
        int64_t col_stride
        const float *data
        const int32_t *indices
        const int64_t *indptr
        const float *shift
        const float *scale
    ctypedef struct fastmlp_input_f64:
        const void *dense
        int dense_type
        int64_t row_stride
        int64_t col_stride
        const double *data
        const int32_t *indices
        const int64_t *indptr
        const double *shift
        const double *scale

    ctypedef void (*fastmlp_gemm_t_f32)(char *, char *, int *, int *, int *, float *, float *,
                                        int *, float *, int *, float *, float *, int *) noexcept
    ctypedef void (*fastmlp_gemm_t_f64)(char *, char *, int *, int *, int *, double *, double *,
                                        int *, double *, int *, double *, double *, int *) noexcept
    ctypedef void (*fastmlp_gemv_t_f32)(char *, int *, int *, float *, float *, int *, float *,
                                        int *, float *, float *, int *) noexcept
    ctypedef void (*fastmlp_gemv_t_f64)(char *, int *, int *, double *, double *, int *,
                                        double *, int *, double *, double *, int *) noexcept
    void fastmlp_set_blas_f32(fastmlp_gemm_t_f32 gemm, fastmlp_gemv_t_f32 gemv)
    void fastmlp_set_blas_f64(fastmlp_gemm_t_f64 gemm, fastmlp_gemv_t_f64 gemv)
    int fastmlp_openmp_enabled()
    int fastmlp_max_threads()
    int fastmlp_tiles_available()
    int fastmlp_tiles_enabled()
    int fastmlp_set_tiles(int kind)
    int fastmlp_training_uses_blas(const fastmlp_net *net, const fastmlp_optim *opt, int64_t n,
                                   int batch_size, int n_parts, int sparse)
    int64_t fastmlp_blas_calls
    int64_t fastmlp_stored_gradient(const fastmlp_net *net, const fastmlp_optim *opt,
                                    int n_parts, int sparse)
    int FASTMLP_PREDICT_THREADED_ROWS
    int FASTMLP_TILE_AVX2_MAX_COLS

    int64_t workspace_size_f32(const fastmlp_net *net, int batch_size, int n_parts, int sparse)
    int64_t workspace_size_f64(const fastmlp_net *net, int batch_size, int n_parts, int sparse)
    int64_t gradient_scratch_f32(const fastmlp_net *net, const fastmlp_optim *opt, int n_parts,
                                 int sparse)
    int64_t gradient_scratch_f64(const fastmlp_net *net, const fastmlp_optim *opt, int n_parts,
                                 int sparse)
    int train_epoch_f32(float *params, float *grads, float *state, float *workspace,
                        double *batch_loss, int64_t *t, const fastmlp_input_f32 *X, const float *Y,
                        const float *sample_weight, const int64_t *order, int64_t n,
                        int batch_size, const fastmlp_net *net, const fastmlp_optim *opt,
                        uint64_t seed, int n_parts, int n_threads, double max_seconds,
                        fastmlp_health *health, const float *src_params, const float *src_state,
                        int *all_finite)
    int train_epoch_f64(double *params, double *grads, double *state, double *workspace,
                        double *batch_loss, int64_t *t, const fastmlp_input_f64 *X, const double *Y,
                        const double *sample_weight, const int64_t *order, int64_t n,
                        int batch_size, const fastmlp_net *net, const fastmlp_optim *opt,
                        uint64_t seed, int n_parts, int n_threads, double max_seconds,
                        fastmlp_health *health, const double *src_params,
                        const double *src_state, int *all_finite)
    int batch_gradient_f32(float *grads, double *loss, float *params, float *workspace,
                           const fastmlp_input_f32 *X, const float *Y, const float *sample_weight,
                           const int64_t *order, int B, const fastmlp_net *net, double alpha,
                           uint64_t seed, int64_t t, int n_parts, int n_threads)
    int batch_gradient_f64(double *grads, double *loss, double *params, double *workspace,
                           const fastmlp_input_f64 *X, const double *Y,
                           const double *sample_weight, const int64_t *order, int B,
                           const fastmlp_net *net, double alpha, uint64_t seed, int64_t t,
                           int n_parts, int n_threads)
    int predict_f32(float *out, const fastmlp_input_f32 *X, int64_t n, const float *params,
                    const fastmlp_net *net, int n_threads, int check_finite)
    int predict_f64(double *out, const fastmlp_input_f64 *X, int64_t n, const double *params,
                    const fastmlp_net *net, int n_threads, int check_finite)
    int batchnorm_population_f32(float *params, const fastmlp_input_f32 *X, int64_t n,
                                 const fastmlp_net *net, int n_threads)
    int batchnorm_population_f64(double *params, const fastmlp_input_f64 *X, int64_t n,
                                 const fastmlp_net *net, int n_threads)

# the products the register tiles do not take go to scipy's BLAS: nothing to link at build time
fastmlp_set_blas_f32(<fastmlp_gemm_t_f32>sgemm, <fastmlp_gemv_t_f32>sgemv)
fastmlp_set_blas_f64(<fastmlp_gemm_t_f64>dgemm, <fastmlp_gemv_t_f64>dgemv)
# the dense layers' products by csrc/tiles.c's register tiles, the widest the CPU runs
fastmlp_set_tiles(2)

# prediction of fewer rows: one OpenMP thread, BLAS with its own threads (csrc/fastmlp.h)
PREDICT_THREADED_ROWS = FASTMLP_PREDICT_THREADED_ROWS
# the AVX2 tiles run only products whose result is at most this wide; BLAS the rest
TILE_AVX2_MAX_COLS = FASTMLP_TILE_AVX2_MAX_COLS
# "logistic" is scikit-learn's name for the sigmoid unit
ACTIVATIONS = {"identity": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "logistic": 3}
OUTPUTS = {"identity": 0, "logistic": 1, "softmax": 2, "exp": 3}
SOLVERS = {"sgd": 0, "adagrad": 1, "rmsprop": 2, "adam": 3}
SCHEDULES = {"constant": 0, "invscaling": 1}
CORRUPTIONS = {None: 0, "mask": 1, "gaussian": 2}


def openmp_enabled():
    return bool(fastmlp_openmp_enabled())


def max_threads():
    return fastmlp_max_threads()


TILE_KINDS = {"avx2": 1, "avx512": 2}  # fastmlp.h's FASTMLP_TILES_AVX2, _AVX512


def tiles_available(kind=None):
    """Whether training and prediction can use the register tiles of `kind` ("avx512" or
    "avx2"; None: any kind) on this build and this CPU."""
    best = fastmlp_tiles_available()
    if kind is None:
        return best > 0
    if kind not in TILE_KINDS:
        raise ValueError(f"kind must be one of {sorted(TILE_KINDS)} or None, got {kind!r}")
    return TILE_KINDS[kind] <= best


def tiles_in_use():
    """The register tiles the products run on now: "avx512", "avx2", or False (BLAS)."""
    current = fastmlp_tiles_enabled()
    return next((name for name, value in TILE_KINDS.items() if value == current), False)


def set_tiles(kind):
    """The dense layers' products by the register tiles or by BLAS, for tests and benchmarks
    that compare them: True for the widest tiles this CPU runs, "avx512" or "avx2" for those
    (ValueError where the CPU lacks them), False for BLAS. Returns the setting before, in the
    same terms (a value set_tiles takes back)."""
    before = tiles_in_use()
    if kind is True:
        fastmlp_set_tiles(max(TILE_KINDS.values()))
    elif kind is False or kind is None:
        fastmlp_set_tiles(0)
    elif kind in TILE_KINDS:
        if not tiles_available(kind):
            raise ValueError(f"this CPU (or build) cannot run the {kind} tiles")
        fastmlp_set_tiles(TILE_KINDS[kind])
    else:
        raise ValueError(f"set_tiles takes True, False, 'avx512' or 'avx2', got {kind!r}")
    return before


cdef const int64_t *_offsets(const int64_t[::1] view):
    return NULL if view is None or view.shape[0] == 0 else &view[0]


cdef class Net:
    """The architecture and the parameter layout as the C side reads them (fastmlp_net).
    Built from network.py's layout table; holds the arrays the struct points into."""
    cdef fastmlp_net c
    # const: the layout may arrive as read-only arrays (a model loaded from a memory map)
    cdef const int[::1] _units
    cdef const double[::1] _dropout
    cdef const int64_t[::1] _w, _b, _gamma, _beta, _mean, _var
    cdef const int[::1] _tied

    def __init__(self, units, activation, output, dropout, bint batch_norm, w_offset, b_offset,
                 gamma_offset, beta_offset, mean_offset, var_offset, int64_t n_weights,
                 int64_t n_trainable, tied=None):
        # tied: (n_pairs, 2) weight layers (a, b) with W_b = W_a^T (csrc/tied.c), or None
        self._units = np.ascontiguousarray(units, dtype=np.intc)
        self._dropout = np.ascontiguousarray(dropout, dtype=np.float64)
        self._w = np.ascontiguousarray(w_offset, dtype=np.int64)
        self._b = np.ascontiguousarray(b_offset, dtype=np.int64)
        self._gamma = np.ascontiguousarray(gamma_offset, dtype=np.int64)
        self._beta = np.ascontiguousarray(beta_offset, dtype=np.int64)
        self._mean = np.ascontiguousarray(mean_offset, dtype=np.int64)
        self._var = np.ascontiguousarray(var_offset, dtype=np.int64)
        self.c.n_layers = self._units.shape[0] - 1
        self.c.units = &self._units[0]
        self.c.activation = ACTIVATIONS[activation]
        self.c.output = OUTPUTS[output]
        self.c.dropout = NULL if np.all(np.asarray(self._dropout) == 0) else &self._dropout[0]
        self.c.batch_norm = batch_norm
        self.c.w_offset = _offsets(self._w)
        self.c.b_offset = _offsets(self._b)
        self.c.gamma_offset = _offsets(self._gamma)
        self.c.beta_offset = _offsets(self._beta)
        self.c.mean_offset = _offsets(self._mean)
        self.c.var_offset = _offsets(self._var)
        self.c.n_weights = n_weights
        self.c.n_trainable = n_trainable
        self.c.corruption = 0
        self.c.corruption_level = 0
        pairs = np.zeros((0, 2)) if tied is None else np.asarray(tied).reshape(-1, 2)
        self._tied = np.ascontiguousarray(pairs.ravel(), dtype=np.intc)
        self.c.n_tied = pairs.shape[0]
        self.c.tied = &self._tied[0] if pairs.shape[0] else NULL

    def set_corruption(self, kind, double level):
        """The denoising autoencoder's noise on the training input rows (csrc/corruption.c):
        kind None, "mask" (level: the fraction of inputs set to 0) or "gaussian" (level: the
        noise's std, in the units of X)."""
        self.c.corruption = CORRUPTIONS[kind]
        self.c.corruption_level = level

    def workspace_size(self, int batch_size, int n_parts, dtype, bint sparse=False):
        """Reals of workspace that train_epoch / batch_gradient need for batches of at most
        batch_size rows cut into n_parts parts."""
        if np.dtype(dtype) == np.float32:
            return workspace_size_f32(&self.c, batch_size, n_parts, sparse)
        return workspace_size_f64(&self.c, batch_size, n_parts, sparse)

    def training_uses_blas(self, int64_t n, int batch_size, int n_parts, bint sparse=False,
                           solver="adam", double momentum=0.0, bint nesterov=False):
        """Whether train_epoch over n rows in batches of batch_size cut into n_parts parts, with
        `solver` (at `momentum`, Nesterov or not, for "sgd"), sends any product to BLAS under
        the tiles in use now (csrc/fastmlp.h): where it does not, BLAS's threads need no cap
        around it."""
        cdef fastmlp_optim o = _solver(solver, momentum, nesterov)
        return bool(fastmlp_training_uses_blas(&self.c, &o, n, batch_size, n_parts, sparse))

    def stored_gradient(self, int n_parts, bint sparse=False, solver="adam",
                        double momentum=0.0, bint nesterov=False):
        """The trainable parameters whose gradient train_epoch stores, with batches cut into
        n_parts parts, under the tiles in use now (csrc/fastmlp.h): the rest of its gradient
        buffer is never written (fused momentum, weights stepped in backward)."""
        cdef fastmlp_optim o = _solver(solver, momentum, nesterov)
        return int(fastmlp_stored_gradient(&self.c, &o, n_parts, sparse))

    def gradient_scratch(self, int n_parts, dtype, bint sparse=False, solver="adam",
                         double momentum=0.0, bint nesterov=False):
        """Reals train_epoch allocates besides its workspace for the work parts' blocks of
        the weight gradient where it steps weights in backward (0 where it steps none)."""
        cdef fastmlp_optim o = _solver(solver, momentum, nesterov)
        if np.dtype(dtype) == np.float32:
            return int(gradient_scratch_f32(&self.c, &o, n_parts, sparse))
        return int(gradient_scratch_f64(&self.c, &o, n_parts, sparse))


cdef fastmlp_optim _solver(solver, double momentum, bint nesterov):
    """An optimizer of which only the solver, momentum and nesterov are read (the queries on
    what training does); L-BFGS, which trains elsewhere, as no solver of train_epoch's."""
    cdef fastmlp_optim o
    memset(&o, 0, sizeof(o))
    o.solver = SOLVERS.get(solver, -1)
    o.momentum = momentum if solver == "sgd" else 0.0
    o.nesterov = nesterov if solver == "sgd" else 0
    return o


cdef fastmlp_optim _optim(dict hp):
    cdef fastmlp_optim o
    o.solver = SOLVERS[hp["solver"]]
    o.schedule = SCHEDULES[hp["schedule"]]
    o.learning_rate = hp["learning_rate"]
    o.power_t = hp["power_t"]
    o.momentum = hp["momentum"]
    o.nesterov = hp["nesterov"]
    o.beta_1 = hp["beta_1"]
    o.beta_2 = hp["beta_2"]
    o.rho = hp["rho"]
    o.epsilon = hp["epsilon"]
    o.alpha = hp["alpha"]
    return o


cdef size_t _address(a, dtype) except? 0:
    """The data address of a C-contiguous array of `dtype` (validated upstream), 0 for None.
    Through numpy's C API: one-row prediction calls this six times, and the Python-level
    __array_interface__ route cost microseconds each."""
    if a is None:
        return 0
    if not isinstance(a, cnp.ndarray) or a.dtype != dtype \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        raise TypeError(f"fastmlp internal: expected a C-contiguous {dtype} array, got {a!r:.80}")
    return <size_t>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef class Input:
    """Rows of X as the C side reads them (fastmlp_input): dense (n, n_features) float32 or
    float64 in any memory order (strided views and memory maps included: never copied, the C
    side converts each row to the model's dtype as it gathers it), or CSR, with optional
    on-the-fly standardization (x - shift) * scale. `dtype` is the model's (default: X's);
    CSR values in another dtype are converted, being only the nonzeros. Holds the arrays it
    points into."""
    cdef fastmlp_input_f32 f32
    cdef fastmlp_input_f64 f64
    cdef object _keep

    def __init__(self, X, shift=None, scale=None, dtype=None):
        sparse = sp.issparse(X)
        dtype = np.dtype(X.dtype if dtype is None else dtype)
        # the kernels read int32 column indices and int64 row pointers: a copy of the index
        # arrays only when scipy chose other dtypes
        data = np.ascontiguousarray(X.data, dtype=dtype) if sparse else None
        indices = np.ascontiguousarray(X.indices, dtype=np.int32) if sparse else None
        indptr = np.ascontiguousarray(X.indptr, dtype=np.int64) if sparse else None
        cdef size_t a_data = _address(data, dtype)
        cdef size_t a_shift = _address(shift, dtype), a_scale = _address(scale, dtype)
        cdef size_t a_indices = _address(indices, np.int32), a_indptr = _address(indptr, np.int64)
        cdef size_t a_dense = 0
        cdef int dense_type = FASTMLP_FLOAT32
        cdef int64_t row_stride = 0, col_stride = 0
        if not sparse:
            if not isinstance(X, cnp.ndarray) or X.ndim != 2 \
                    or X.dtype not in (np.float32, np.float64):
                raise TypeError(f"fastmlp internal: expected a 2-D float32 or float64 array, "
                                f"got {X!r:.80}")
            a_dense = <size_t>cnp.PyArray_DATA(<cnp.ndarray>X)
            dense_type = FASTMLP_FLOAT64 if X.dtype == np.float64 else FASTMLP_FLOAT32
            row_stride, col_stride = X.strides[0], X.strides[1]
        self.f32.dense = self.f64.dense = <const void *>a_dense
        self.f32.dense_type = self.f64.dense_type = dense_type
        self.f32.row_stride = self.f64.row_stride = row_stride
        self.f32.col_stride = self.f64.col_stride = col_stride
        self.f32.data = <const float *>a_data
        self.f32.shift = <const float *>a_shift
        self.f32.scale = <const float *>a_scale
        self.f32.indices = <const int32_t *>a_indices
        self.f32.indptr = <const int64_t *>a_indptr
        self.f64.data = <const double *>a_data
        self.f64.shift = <const double *>a_shift
        self.f64.scale = <const double *>a_scale
        self.f64.indices = <const int32_t *>a_indices
        self.f64.indptr = <const int64_t *>a_indptr
        self._keep = (X, data, indices, indptr, shift, scale)


def blas_calls():
    """The products the C side sent to BLAS in this process so far (a count for tests)."""
    return fastmlp_blas_calls


def generator_state(capsule, Py_ssize_t size):
    """The first `size` bytes of the state struct of the numpy BitGenerator whose `capsule`
    this is: a failed call's rollback of its generator (fitting._generator_state). One copy,
    where ctypes.string_at, cold after the C work, cost a twentieth of a small partial_fit's
    Python side. The caller checked `size` against the generator's layout."""
    cdef bitgen_t *bitgen = <bitgen_t *>PyCapsule_GetPointer(capsule, "BitGenerator")
    return PyBytes_FromStringAndSize(<const char *>bitgen.state, size)


def set_generator_state(capsule, bytes state):
    """Put back the bytes generator_state took (of the same generator's kind)."""
    cdef bitgen_t *bitgen = <bitgen_t *>PyCapsule_GetPointer(capsule, "BitGenerator")
    memcpy(bitgen.state, PyBytes_AS_STRING(state), PyBytes_GET_SIZE(state))


cdef int64_t _label_column(const int64_t *classes, int64_t k, int64_t label) noexcept nogil:
    """The index of `label` in the ascending classes (k,), or -1: a binary search."""
    cdef int64_t lo = 0, hi = k, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if classes[mid] < label:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < k and classes[lo] == label else -1


def one_hot(cnp.ndarray y, cnp.ndarray classes, bint binary, dtype):
    """Y (n, k) in `dtype` (float32 or float64) for the labels y (n,) among the ascending
    `classes` (k,), as LabelBinarizer encodes them: a 1 in each label's column, or with
    `binary` one column, 1 where the label is the second class. One call where numpy took six
    (targets.read_labels: a later partial_fit's labels), each several times its warm cost
    right after the C work. None where it does not apply (y and classes not both C-ordered
    int64, or int32) or some label is not among the classes, for numpy's general path."""
    cdef int64_t n = y.shape[0], k = classes.shape[0], i, column, columns
    cdef int typenum = y.descr.type_num
    if y.ndim != 1 or classes.ndim != 1 or classes.descr.type_num != typenum \
            or typenum not in (cnp.NPY_INT64, cnp.NPY_INT32) \
            or not cnp.PyArray_IS_C_CONTIGUOUS(y) or not cnp.PyArray_IS_C_CONTIGUOUS(classes):
        return None
    cdef bint wide = typenum == cnp.NPY_INT64
    cdef bint single = dtype == np.float32
    if not single and dtype != np.float64:
        return None
    cdef const int64_t *y64 = <const int64_t *>cnp.PyArray_DATA(y)
    cdef const int32_t *y32 = <const int32_t *>cnp.PyArray_DATA(y)
    cdef int64_t[::1] sorted_classes = classes.astype(np.int64) if not wide else classes
    columns = 1 if binary else k
    cdef cnp.npy_intp dims[2]
    dims[0], dims[1] = n, columns
    cdef cnp.ndarray Y = cnp.PyArray_ZEROS(2, dims,
                                           cnp.NPY_FLOAT32 if single else cnp.NPY_FLOAT64, 0)
    cdef float *out32 = <float *>cnp.PyArray_DATA(Y)
    cdef double *out64 = <double *>cnp.PyArray_DATA(Y)
    if k == 0:
        return None if n else Y
    for i in range(n):
        column = _label_column(&sorted_classes[0], k, y64[i] if wide else <int64_t>y32[i])
        if column < 0:
            return None
        if binary:
            column = 0 if column == 1 else -1
        if column >= 0:
            if single:
                out32[i * columns + column] = 1
            else:
                out64[i * columns + column] = 1
    return Y


def total(cnp.ndarray[double, ndim=1, mode="c"] values):
    """The sum of `values` in order: an epoch's mean loss from its batches' J_b * |b|
    (training.Stretches.epoch), where numpy's sum, cold right after the C work, cost a tenth
    of a small partial_fit's Python side."""
    cdef const double *x = &values[0] if values.shape[0] else NULL
    cdef double sum = 0.0
    cdef Py_ssize_t i
    for i in range(values.shape[0]):
        sum += x[i]
    return sum


def work_parts(int64_t n_weights, int64_t batch_size, int most):
    """How many slabs (at most `most`) the GEMMs of a training batch of `batch_size` rows are
    worth cutting into (fastmlp.h): the slabs fix the result; threads only share them out."""
    return fastmlp_work_parts(n_weights, batch_size, most)


def state_slots(str solver):
    """The rows of n_trainable values the optimizer state of `solver` holds (fastmlp.h): 2 for
    adam (m and v), 1 for the others (sgd's velocity, adagrad's and rmsprop's s)."""
    return fastmlp_state_slots(SOLVERS[solver])


def epoch_batches(int64_t n, int64_t batch_size, bint batch_norm):
    """The batches train_epoch makes of n rows (fastmlp.h): with batch norm, a trailing
    single row joins the batch before it."""
    return fastmlp_epoch_batches(n, batch_size, batch_norm)


cdef class Health:
    """Layer health that train_epoch accumulates over an epoch (fastmlp_health, csrc/fastmlp.h):
    `count` and `sum` (n_parts, hidden units): per part and hidden unit, the examples near a
    bound (tanh, sigmoid) or active (relu), and the sum of its outputs; `norms` (n_layers, 4):
    per weight layer the sums of squares of the gradient, of the weights before and after, and
    of the update, for the last batch of `order`, written by the call that trains it (so, over
    an epoch's calls, each given the rest of the epoch, of the epoch's last update). `reset()`
    before an epoch."""
    cdef fastmlp_health c
    cdef readonly object count, sum, norms
    cdef readonly int n_parts
    cdef readonly tuple hidden  # the hidden layers' units

    def __init__(self, Net net, int n_parts, double margin):
        cdef int64_t[:, ::1] count
        cdef double[:, ::1] sums
        cdef double[:, ::1] norms
        units = np.asarray(net._units)
        self.hidden = tuple(units[1:len(units) - 1].tolist())
        hidden = sum(self.hidden)
        self.n_parts = n_parts
        # one column at least, so that the buffers have an address
        self.count = np.zeros((n_parts, max(hidden, 1)), dtype=np.int64)
        self.sum = np.zeros((n_parts, max(hidden, 1)), dtype=np.float64)
        self.norms = np.zeros((len(units) - 1, 4), dtype=np.float64)
        count, sums, norms = self.count, self.sum, self.norms
        self.c.count = &count[0, 0]
        self.c.sum = &sums[0, 0]
        self.c.norms = &norms[0, 0]
        self.c.hidden_units = hidden
        self.c.margin = margin

    def reset(self):
        self.count[...] = 0
        self.sum[...] = 0
        self.norms[...] = 0

    def records(self, int counting, double share, int64_t n_examples):
        """The epoch's record of each weight layer l (fed by coefs_[l]), the dicts that
        _health.health_record documents, in one call: a dozen numpy calls and the dicts built
        in Python cost a tenth of a small partial_fit's Python side, each several times its
        warm cost right after the C work. A hidden layer's "mean_activation" is the sum of its
        units' outputs over the epoch (the parts' sums added unit by unit in part order, then
        the layer's units in order: the same sum for any thread count) over units *
        n_examples; its "dead" (`counting` 1: relu) or "saturated" (2: tanh,
        sigmoid) the fraction of units never active, or near a bound on at least `share` of
        the examples (count / n_examples >= share, in doubles); 0: neither. Every layer's
        "grad_norm", "weight_norm", "update_ratio" are the roots of the epoch's last update's
        sums of squares in `norms`."""
        # through the struct's pointers: a memoryview of each buffer cost more than the loops
        cdef const int64_t *count = self.c.count
        cdef const double *sums = self.c.sum
        cdef const double *norms = self.c.norms
        cdef int64_t j, start = 0, end, counted, examples, width = self.count.shape[1], n
        cdef int p, l, n_layers = self.norms.shape[0], n_hidden = len(self.hidden)
        cdef double layer_sum, unit_sum, g2, before2, after2, update2
        records = []
        for l in range(n_layers):
            g2, before2, after2, update2 = norms[4 * l], norms[4 * l + 1], norms[4 * l + 2], \
                norms[4 * l + 3]
            record = {"saturated": None, "dead": None, "mean_activation": None,
                      "grad_norm": sqrt(g2), "weight_norm": sqrt(after2),
                      "update_ratio": sqrt(update2) / sqrt(before2) if before2 > 0
                      else (0.0 if update2 == 0 else INFINITY)}
            if l < n_hidden and n_examples > 0:
                n = self.hidden[l]
                counted, end, layer_sum = 0, start + n, 0.0
                for j in range(start, end):
                    unit_sum = 0.0
                    for p in range(self.n_parts):
                        unit_sum += sums[p * width + j]
                    layer_sum += unit_sum
                    if counting:
                        examples = 0
                        for p in range(self.n_parts):
                            examples += count[p * width + j]
                        if counting == 1:
                            counted += examples == 0
                        else:
                            counted += <double>examples / <double>n_examples >= share
                record["mean_activation"] = layer_sum / <double>(n * n_examples)
                if counting:
                    record["dead" if counting == 1 else "saturated"] = \
                        <double>counted / <double>n
                start = end
            records.append(record)
        return records


def _check_workspace(Net net, Input X, floating[::1] workspace, int batch_size, int n_parts):
    """The C side lays its buffers out in the workspace as workspace_size counts them."""
    dtype = np.float32 if floating is float else np.float64
    needed = net.workspace_size(batch_size, n_parts, dtype, X.f64.dense == NULL)
    if workspace.shape[0] < needed:
        raise ValueError(f"fastmlp internal: the workspace holds {workspace.shape[0]} values, "
                         f"batches of {batch_size} rows in {n_parts} parts need {needed}")


def train_epoch(Net net, dict hyper, Input X, floating[::1] params, floating[::1] grads,
                floating[::1] state, floating[::1] workspace, double[::1] batch_loss,
                const floating[:, ::1] Y, const floating[::1] sample_weight,
                const int64_t[::1] order, int batch_size, uint64_t seed, int64_t t, int n_parts,
                int n_threads, double max_seconds=0, Health health=None,
                const floating[::1] source_params=None, const floating[::1] source_state=None,
                int[::1] finite=None):
    """Mini-batches over the rows `order`, each batch's J_b * |b| into batch_loss
    (epoch_batches(len(order), batch_size, batch_norm),); returns t, the count of updates so
    far. With max_seconds > 0 it stops after the batch that ends about that long after the
    call began (at least one): the batches trained are the returned t less the t passed in,
    and the rest of `order` is for the next call. health: None (off), or a Health made for
    this net and n_parts, which the call adds its batches' unit counts to and whose norms it
    overwrites with those of the last batch of `order` (when it trains that batch; a call the
    time limit stops before it leaves them). source_params, source_state:
    None, or what the first update reads instead of params (its trainable part; the tail must
    be filled in already) and state, which it leaves unchanged: training into new buffers
    without copying the old ones first. finite: None, or an array of two ints: [0] set to
    whether the trainable parameters and the solver's state are finite after the last update,
    [1] to whether every dense input row gathered was finite once standardized (0 for any NaN
    or inf in those rows of X, and possibly for finite values that overflow)."""
    cdef fastmlp_optim opt = _optim(hyper)
    cdef fastmlp_health *health_c = NULL
    if source_params is not None and source_params.shape[0] != params.shape[0]:
        raise ValueError("fastmlp internal: source_params and params differ in size")
    if source_state is not None and source_state.shape[0] != state.shape[0]:
        raise ValueError("fastmlp internal: source_state and state differ in size")
    if state.shape[0] < fastmlp_state_slots(opt.solver) * net.c.n_trainable:
        raise ValueError("fastmlp internal: the state is smaller than the solver's")
    if finite is not None and finite.shape[0] != 2:
        raise ValueError("fastmlp internal: finite holds two ints")
    cdef const floating *src_p = NULL if source_params is None else &source_params[0]
    cdef const floating *src_s = NULL if source_state is None else &source_state[0]
    cdef int *finite_c = NULL if finite is None else &finite[0]
    if health is not None:
        if health.n_parts != n_parts or health.norms.shape[0] != net.c.n_layers:
            raise ValueError("fastmlp internal: the Health was made for another net or parts")
        health_c = &health.c
    cdef int status
    cdef const floating *sw = NULL if sample_weight is None else &sample_weight[0]
    if batch_loss.shape[0] < fastmlp_epoch_batches(order.shape[0], batch_size, net.c.batch_norm):
        raise ValueError("fastmlp internal: batch_loss is shorter than the number of batches")
    _check_workspace(net, X, workspace, batch_size, n_parts)
    with nogil:
        if floating is float:
            status = train_epoch_f32(&params[0], &grads[0], &state[0], &workspace[0],
                                     &batch_loss[0], &t, &X.f32, &Y[0, 0], sw, &order[0],
                                     order.shape[0], batch_size, &net.c, &opt, seed, n_parts,
                                     n_threads, max_seconds, health_c, src_p, src_s,
                                     finite_c)
        else:
            status = train_epoch_f64(&params[0], &grads[0], &state[0], &workspace[0],
                                     &batch_loss[0], &t, &X.f64, &Y[0, 0], sw, &order[0],
                                     order.shape[0], batch_size, &net.c, &opt, seed, n_parts,
                                     n_threads, max_seconds, health_c, src_p, src_s,
                                     finite_c)
    if status != 0:
        raise MemoryError("fastmlp: out of memory in train_epoch")
    return t


def batch_gradient(Net net, Input X, floating[::1] params, floating[::1] grads,
                   floating[::1] workspace, const floating[:, ::1] Y,
                   const floating[::1] sample_weight, const int64_t[::1] order, double alpha,
                   uint64_t seed, int64_t t, int n_parts, int n_threads):
    """J and its gradient (into grads) for the batch of rows `order`, in training mode."""
    cdef double loss = 0
    cdef int status
    _check_workspace(net, X, workspace, order.shape[0], n_parts)
    cdef const floating *sw = NULL if sample_weight is None else &sample_weight[0]
    with nogil:
        if floating is float:
            status = batch_gradient_f32(&grads[0], &loss, &params[0], &workspace[0], &X.f32,
                                        &Y[0, 0], sw, &order[0], order.shape[0], &net.c, alpha,
                                        seed, t, n_parts, n_threads)
        else:
            status = batch_gradient_f64(&grads[0], &loss, &params[0], &workspace[0], &X.f64,
                                        &Y[0, 0], sw, &order[0], order.shape[0], &net.c, alpha,
                                        seed, t, n_parts, n_threads)
    if status != 0:
        raise MemoryError("fastmlp: out of memory in batch_gradient")
    return loss


def predict(Net net, Input X, const floating[::1] params, floating[:, ::1] out, int n_threads,
            bint check_finite=False):
    """out (n, n_outputs) = the network's outputs for every row of X, in inference mode.
    Returns False when an output is not finite (out is still written), and with check_finite
    (dense X) also when some row's first-layer pre-activation is not finite (NaN or inf in X,
    or an overflow; out then undefined); else True."""
    cdef int status
    with nogil:
        if floating is float:
            status = predict_f32(&out[0, 0], &X.f32, out.shape[0], &params[0], &net.c, n_threads,
                                 check_finite)
        else:
            status = predict_f64(&out[0, 0], &X.f64, out.shape[0], &params[0], &net.c, n_threads,
                                 check_finite)
    if status == FASTMLP_ENONFINITE:
        return False
    if status != 0:
        raise MemoryError("fastmlp: out of memory in predict")
    return True


def batchnorm_population(Net net, Input X, floating[::1] params, int64_t n, int n_threads):
    """Running statistics of every batch-norm layer := the exact population mean and unbiased
    variance of its pre-activation over the n rows of X (n >= 2), layer by layer."""
    cdef int status
    with nogil:
        if floating is float:
            status = batchnorm_population_f32(&params[0], &X.f32, n, &net.c, n_threads)
        else:
            status = batchnorm_population_f64(&params[0], &X.f64, n, &net.c, n_threads)
    if status != 0:
        raise MemoryError("fastmlp: out of memory in batchnorm_population")
