"""fastmlp.save / fastmlp.load: a model as a file of arrays and JSON, never pickle.

The file is a zip archive whose members are all stored uncompressed:
  metadata.json    format name and version, the estimator class, its hyperparameters, the
                   fitted architecture (units, batch norm, normalization; an Autoencoder's
                   tied weight layers) and every fitted scalar attribute (t_, the samples
                   seen, and _n_updates, the update count t of the formulas; a version 1
                   file's t_ was the update count, and loads as _fitted_scalars says)
  params.npy       the flat parameter buffer `_params` (its layout is recomputed from the
                   metadata with `parameter_layout`, never read from the file)
  state.npy        the optimizer state (state_slots * n_trainable,): the rows the solver that
                   made it uses (metadata "state_solver", whose state and update count began
                   at the history's epoch "state_since"), so partial_fit continues as before;
                   a version 1 or 2 file holds two rows for every solver, and loads the ones
                   its solver uses
  rng.npy          the 624 words of the Mersenne twister that shuffles the epochs
  classes.npy      classifiers: the labels (numbers, booleans or strings)
  loss_curve.npy, validation_scores.npy   the training history (float64)
  history.npy      history_, one row per epoch, columns as metadata "history_columns" name
                   them (float64; None is NaN): the numeric keys only, each record's layer
                   health "health" is not kept and loads as None
Arrays are read with allow_pickle=False, so no member can run code. Only a regular file is
read, through a view held to its size when opened. Before any array is allocated its header
must state the dtype and shape the metadata implies, and its stored size must match, so a file
cannot claim more memory than it physically holds. Every value is then checked as fit would
leave it (finite parameters, sorted unique classes, counters in range, valid hyperparameters).
Anything malformed raises ValueError. save writes atomically (a temporary file beside the
target, fsynced, then renamed over it)."""
import json
import math
import os
import secrets
import stat
import struct
import zipfile
import zlib

import numpy as np
from sklearn.preprocessing import LabelBinarizer

from .autoencoder import Autoencoder
from .estimators import MLPClassifier, MLPRegressor
from .model import tied_partners
from .network import Network, parameter_layout
from .callbacks import from_config, to_config
from .optim import check_representable, state_slots, state_values
from .schedules import MAX_HALVINGS, LearningRateSchedule
from .training import HEALTH_KEY, RECORD_KEYS, History

FORMAT = "fastmlp-model"
# version 2: t_ is scikit-learn's count of training samples seen and _n_updates the update count
# t of the formulas; version 1 (read too) stored the update count as t_ (_fitted_scalars).
# version 3: state.npy holds the rows its solver uses (optim.state_slots: adam 2, lbfgs 0, the
# others 1); versions 1 and 2 held 2 rows for every solver, the unused one zeros
VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_CLASSES = {cls.__name__: cls for cls in (Network, MLPClassifier, MLPRegressor, Autoencoder)}
_DTYPES = {"float32": np.float32, "float64": np.float64}
_MAX_METADATA_BYTES = 1 << 20
_READ_BYTES = 1 << 24
_MAX_UNITS = 2**31 - 1  # the C side counts units in int
_RNG_WORDS = 624
_MAX_COUNT = 2**62  # sample, update and epoch counters: int64 in C, with room to count on
# fitted scalars kept in the metadata: name -> the JSON types it may have
_SCALARS = {
    "n_features_in_": int, "n_layers_": int, "n_outputs_": int, "t_": int, "_n_updates": int,
    "n_iter_": int, "_seed": int, "_fitted_task": str, "out_activation_": str, "_y_1d": bool,
    "loss_": (float, int), "best_loss_": (float, int, type(None)),
    "best_validation_score_": (float, int, type(None)), "best_epoch_": (int, type(None)),
}


def save(model, path):
    """Write a fitted Network, MLPClassifier, MLPRegressor or Autoencoder to a file.

    The file is a zip archive of uncompressed NumPy arrays (the parameters, the optimizer
    state, the shuffling generator's state, the classes, the training history) and one JSON
    document (the hyperparameters, the architecture and the fitted scalar attributes); no
    member is a pickle, so ``load`` never runs code from it. Everything ``partial_fit`` needs
    to go on is kept; scratch buffers and the thread count measured on this machine are not.
    A ``random_state`` that is a ``RandomState`` instance is stored as None (the state of
    the generator that shuffles the epochs is stored on its own).

    The write is atomic: the file is written beside ``path`` under a temporary name, flushed
    and synced to disk, then renamed over ``path``, so a full disk, a crash or an interrupt
    leaves the previous file (or none) intact, never a truncated one. A symbolic link is
    followed, and an existing file keeps its permissions.

    Parameters
    ----------
    model : Network, MLPClassifier, MLPRegressor or Autoencoder
        The fitted estimator (exactly one of these classes, not a subclass).
    path : str or path-like
        The file to write; any existing regular file there is replaced.

    Raises
    ------
    TypeError
        If ``model`` is of another class, or its ``callbacks`` are not ``fastmlp.callbacks``'
        own (or hold a ``ProgressBar`` with a ``file``).
    ValueError
        If ``model`` is not fitted, has hyperparameters that ``fit`` would refuse, has class
        labels that are not numbers, booleans or strings, is an Autoencoder with tied weights
        whose two copies of a matrix differ (a write into ``coefs_``), or ``path`` names
        something that is not a regular file (a folder, a device, a pipe).
    OSError
        If the file cannot be written.

    See Also
    --------
    load : Read the model back.

    Examples
    --------
    >>> import os, tempfile
    >>> import fastmlp
    >>> from fastmlp import MLPClassifier
    >>> X, y = [[0.0], [0.2], [0.8], [1.0]], [0, 0, 1, 1]
    >>> clf = MLPClassifier(learning_rate_init=0.05, max_iter=300, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.fastmlp")
    ...     fastmlp.save(clf, path)
    ...     same = fastmlp.load(path)
    >>> bool((same.predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    cls = type(model)
    if cls not in _CLASSES.values():
        raise TypeError(f"fastmlp.save writes Network, MLPClassifier or MLPRegressor models "
                        f"and Autoencoder transformers, got {cls.__name__}")
    if not hasattr(model, "_params"):
        raise ValueError(f"this {cls.__name__} is not fitted yet: call fit before save")
    try:
        _check_hyperparameters(model, model._params.dtype)
    except ValueError as error:
        raise ValueError(f"fastmlp.save writes models whose hyperparameters fit would accept: "
                         f"{error}") from None
    params = model.get_params(deep=False)
    dtype_as_text = isinstance(params["dtype"], str)  # "float64" comes back as text, not a type
    params["dtype"] = np.dtype(params["dtype"]).name
    if not isinstance(params["random_state"], (int, np.integer, type(None))):
        # a RandomState instance: the generator's state that matters is saved as rng.npy
        params["random_state"] = None
    if "callbacks" in params:  # an Autoencoder has none
        params["callbacks"] = to_config(params["callbacks"])
    if "class_weight" in params:  # a classifier's (MLPRegressor has none)
        params["class_weight"] = _class_weight_json(params["class_weight"])
    params = {k: _jsonable(v) for k, v in params.items()}
    layout = model._layout
    meta = {
        "format": FORMAT, "version": VERSION, "class": cls.__name__,
        "fastmlp_version": _fastmlp_version(),
        "params": params,
        "units": [int(u) for u in layout["units"]],
        "normalized": bool(layout["n_normalized"]),
        "fitted_spec": _jsonable(model._fitted_spec),
        "attributes": {name: _jsonable(getattr(model, name)) for name in _SCALARS
                       if hasattr(model, name)},
        "params_dtype": model._params.dtype.name,
        "has_state": getattr(model, "_state", None) is not None,
        # the solver whose state it is (set_params may have changed model.solver since)
        "state_solver": model.__dict__.get("_state_solver", model.solver),
        # the history's index of the first epoch of that solver's state and update count
        "state_since": int(model.__dict__.get("_state_since", 0)),
        "loss_curve_length": len(model.loss_curve_),
        "validation_scores_length": None,
        "rng": None,
        "schedule": None,
        "feature_names_in": None,
        "label_type": None,
        "history_columns": RECORD_KEYS,
        "dtype_as_text": dtype_as_text,
    }
    if cls is Autoencoder:
        meta["autoencoder"] = _autoencoder_fields(model)
    arrays = {"params": model._params, "loss_curve": np.asarray(model.loss_curve_, np.float64),
              "history": np.array([[np.nan if r[k] is None else r[k] for k in RECORD_KEYS]
                                   for r in model.history_], np.float64).reshape(-1,
                                                                                len(RECORD_KEYS))}
    if meta["has_state"]:  # the rows its solver uses (a model unpickled from before: two)
        arrays["state"] = state_values(model._state, layout["n_trainable"],
                                       meta["state_solver"])
    if getattr(model, "validation_scores_", None) is not None:
        meta["validation_scores_length"] = len(model.validation_scores_)
        arrays["validation_scores"] = np.asarray(model.validation_scores_, np.float64)
    if hasattr(model, "feature_names_in_"):
        meta["feature_names_in"] = [str(name) for name in model.feature_names_in_]
    if hasattr(model, "_rng"):
        kind, keys, pos, has_gauss, gauss = model._rng.get_state()
        meta["rng"] = {"pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}
        arrays["rng"] = np.asarray(keys, np.uint32)
    schedule = getattr(model, "_schedule", None)
    if schedule is not None:
        meta["schedule"] = _jsonable(vars(schedule))
    if model._fitted_task == "classification":
        meta["label_type"] = model._label_binarizer.y_type_
        meta["n_classes"] = len(model.classes_)  # a binary model has 2, or 1 (one-class y)
        # scikit-learn's unique_labels makes them numbers, booleans or fixed-width strings
        classes = np.asarray(model.classes_)
        if classes.dtype.kind not in "biufU":
            raise ValueError("fastmlp.save stores class labels that are numbers, booleans or "
                             f"strings, got {classes.dtype} labels {classes.tolist()!r}")
        arrays["classes"] = classes
    text = json.dumps(meta, allow_nan=True).encode()
    _write_atomically(os.fsdecode(path), lambda file: _write_archive(file, text, arrays))


def _write_archive(file, text, arrays):
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", text)
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            # streamed in chunks by write_array: no copy of the parameters is made on the way
            with archive.open(name + ".npy", "w", force_zip64=array.nbytes > 2**31 - 2**20) \
                    as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _write_atomically(path, write):
    """write(file) into a new file beside `path`, then that file renamed over `path`: a crash,
    a full disk or an exception at any point leaves the old file or the new one, never a mix,
    and no temporary file behind. A symbolic link is followed, so the file it names is the one
    replaced; an existing file's permissions are kept, a new one gets the umask's."""
    path = os.path.realpath(path)
    folder, name = os.path.split(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        # os.replace would put the model in place of a device, pipe or socket
        raise ValueError(f"fastmlp.save writes regular files; {path} is {_file_kind(mode)}")
    while True:
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            # O_EXCL: never another's file; 0o666: the umask applies, as for open(path, "w")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as file:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, stat.S_IMODE(mode))
            write(file)
            file.flush()
            os.fsync(fd)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable, where the system lets a folder be synced (POSIX)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (AttributeError, OSError):  # no O_DIRECTORY (Windows), or a folder we cannot open
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse to sync a folder: the file itself is synced
        pass
    finally:
        os.close(fd)


def load(path):
    """Read a model written by ``fastmlp.save``.

    The estimator comes back of the class it was saved as, with its hyperparameters, its
    fitted attributes and its optimizer state: it predicts exactly as the saved one did, and
    ``partial_fit`` goes on as it would have. Nothing is unpickled: arrays are read with
    ``allow_pickle=False``, each only after its header has been checked against the shape
    and dtype the metadata implies, and every value is checked as ``fit`` would leave it.
    A file of the previous format (version 1, whose ``t_`` counted optimizer updates) loads
    with ``t_`` the samples seen, as scikit-learn counts them, exactly as its history
    records them (the samples of warm-started fits before the last one were not kept; a
    file without a history gets the update count, a lower bound).

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    model : Network, MLPClassifier, MLPRegressor or Autoencoder
        The fitted estimator.

    Raises
    ------
    ValueError
        If ``path`` is not such a file: not a regular file, truncated, damaged, written by
        something else or by another version of the format, or holding values no fit could
        have made.
    OSError
        If ``path`` does not exist or cannot be read.

    See Also
    --------
    save : Write a fitted model to a file.

    Examples
    --------
    >>> import os, tempfile
    >>> import fastmlp
    >>> from fastmlp import MLPRegressor
    >>> X, y = [[0.0], [0.5], [1.0], [1.5]], [0.0, 1.0, 2.0, 3.0]
    >>> reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.fastmlp")
    ...     fastmlp.save(reg, path)
    ...     loaded = fastmlp.load(path)
    >>> type(loaded).__name__, loaded.n_iter_ == reg.n_iter_
    ('MLPRegressor', True)
    >>> loaded.partial_fit(X, y).n_iter_ == reg.partial_fit(X, y).n_iter_
    True
    """
    path = os.fspath(path)
    # O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        status = os.fstat(fd)
        _require(stat.S_ISREG(status.st_mode),
                 f"not a regular file but {_file_kind(status.st_mode)}")
        with open(fd, "rb", closefd=False) as file:
            return _load(_Bounded(file, status.st_size), status.st_size)
    except (ValueError, _OutsideFile) as error:
        raise ValueError(f"{path} is not a valid fastmlp model file: {error}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, TypeError, OverflowError,
            struct.error, UnicodeDecodeError, NotImplementedError, RecursionError) as error:
        raise ValueError(f"{path} is not a valid fastmlp model file "
                         f"({type(error).__name__}: {error})") from None
    finally:
        os.close(fd)


class _OutsideFile(OSError):
    """A seek before the file's start: a damaged offset, which load reports as ValueError
    (zipfile itself takes an OSError from a seek to mean "too short to be a zip archive")."""


class _Bounded:
    """The file as zipfile reads it, held to the `size` bytes it had when opened: no read can
    ask for more than is left (zipfile reads sizes that the archive claims, and a claimed size
    would otherwise be allocated before it is found to be a lie), and a file that grows while
    it is read is read as it was."""

    def __init__(self, file, size):
        self._file, self._size, self._at = file, size, 0

    def seekable(self):
        return True

    def tell(self):
        return self._at

    def seek(self, offset, whence=os.SEEK_SET):
        at = offset + {os.SEEK_SET: 0, os.SEEK_CUR: self._at, os.SEEK_END: self._size}[whence]
        if at < 0:
            raise _OutsideFile(f"an offset points {-at} bytes before the start of the file")
        self._at = at
        return at

    def read(self, n=-1):
        n = max(0, self._size - self._at) if n is None or n < 0 else \
            max(0, min(n, self._size - self._at))
        self._file.seek(self._at)
        data = self._file.read(n)
        self._at += len(data)
        return data


def _file_kind(mode):
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a pipe"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a plain file"


def _load(file, file_size):
    try:
        archive = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
        raise ValueError("not a zip archive") from None
    with archive:
        members = {info.filename: info for info in archive.infolist()}
        for info in members.values():
            # stored members only: every claimed size is then bounded by the file's own size
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size \
                    or info.file_size > file_size:
                raise ValueError(f"member {info.filename!r} is compressed or claims more bytes "
                                 "than the file holds")
            # encrypted (bit 0), patched (bit 5) or strongly encrypted (bit 6): save writes
            # none of these, and zipfile would raise RuntimeError or NotImplementedError
            if info.flag_bits & 0x61:
                raise ValueError(f"member {info.filename!r} is marked as encrypted or patched "
                                 f"(flag bits {info.flag_bits:#06x})")
        if "metadata.json" not in members:
            raise ValueError("no metadata.json member")
        if members["metadata.json"].file_size > _MAX_METADATA_BYTES:
            raise ValueError("metadata.json is larger than 1 MiB")
        meta = json.loads(archive.read("metadata.json").decode())
        _require(isinstance(meta, dict) and meta.get("format") == FORMAT,
                 f"the metadata does not name the {FORMAT!r} format")
        _require(meta.get("version") in _READABLE_VERSIONS and not isinstance(
                     meta.get("version"), bool),
                 f"format version {meta.get('version')!r}; this fastmlp reads versions "
                 f"{', '.join(map(str, _READABLE_VERSIONS))}")
        model = _estimator(meta)
        expected = _expected_arrays(model, meta)
        _require(set(members) == {"metadata.json"} | {n + ".npy" for n in expected},
                 f"members {sorted(members)}, expected metadata.json and "
                 f"{sorted(n + '.npy' for n in expected)}")
        arrays = {name: _read_npy(archive, members[name + ".npy"], *spec)
                  for name, spec in expected.items()}
    _restore(model, meta, arrays)
    return model


def _estimator(meta):
    """The estimator of the metadata's class with its hyperparameters (checked with the
    arrays, by _check_values)."""
    cls = _CLASSES.get(meta.get("class"))
    _require(cls is not None, f"unknown estimator class {meta.get('class')!r}")
    params = meta.get("params")
    _require(isinstance(params, dict), "no hyperparameters")
    model = cls()
    unknown = set(params) - set(model.get_params(deep=False))
    _require(not unknown, f"unknown hyperparameters {sorted(unknown)}")
    params = dict(params)
    if "dtype" in params:
        _require(params["dtype"] in _DTYPES, f"dtype {params['dtype']!r}")
        if meta.get("dtype_as_text") is not True:
            params["dtype"] = _DTYPES[params["dtype"]]
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if "callbacks" in params:
        params["callbacks"] = from_config(params["callbacks"])
    if "class_weight" in params:
        params["class_weight"] = _class_weight_from_json(params["class_weight"])
    model.set_params(**params)
    return model


def _layout(meta):
    """The parameter layout the (checked) metadata describes."""
    units, spec = meta["units"], meta["fitted_spec"]
    tied = meta["autoencoder"]["tied"] if "autoencoder" in meta else ()
    return parameter_layout(units, spec["batch_norm"], units[0] if meta["normalized"] else 0,
                            tied)


def _autoencoder_fields(model):
    """What an Autoencoder's file adds: its tied weight layers (the fitted architecture, which
    tied_weights may no longer say). Its two copies of a tied matrix must be equal, as fit
    leaves them, or load would refuse the file."""
    layout = model._layout
    if not _ties_hold(layout, model._params):
        raise ValueError("fastmlp.save writes autoencoders whose tied weights are each other's "
                         "transpose, as fit leaves them; this one's copies differ (was coefs_ "
                         "written into?)")
    return {"tied": [[int(a), int(b)] for a, b in layout.get("tied", ())]}


def _ties_hold(layout, params):
    """Whether every tied weight equals its copy (trivially, without ties)."""
    if not len(layout.get("tied", ())):
        return True
    partners = tied_partners(layout)
    return np.array_equal(params[partners], params[:partners.size])


def _check_autoencoder(meta, units):
    """An Autoencoder's architecture: units mirrored around the code layer, tied pairs none or
    every encoder layer with its mirror."""
    fields = meta.get("autoencoder")
    L = len(units) - 1
    mirrored = [[i, L - 1 - i] for i in range(L // 2)]
    _require(isinstance(fields, dict) and set(fields) == {"tied"}
             and fields["tied"] in ([], mirrored),
             f"autoencoder fields {fields!r}: tied pairs must be [] or {mirrored}")
    _require(L % 2 == 0 and units == units[::-1],
             f"units {units}: an autoencoder's units mirror the encoder around the code layer")


def _check_hyperparameters(model, params_dtype):
    """The hyperparameters as fit checks them (scikit-learn's constraints, whose
    InvalidParameterError is a ValueError, then fit's own checks) and as the C step can hold
    them in the parameters' dtype: save writes only what load reads back."""
    model._validate_params()
    model._model_dtype()
    model._dropout_rates(len(model._hidden_sizes()))
    if isinstance(model, Autoencoder):
        model._check_corruption()
    check_representable(model, params_dtype)


def _expected_arrays(model, meta):
    """name -> (dtype check, exact shape) of each array member, from the metadata alone."""
    units = meta.get("units")
    _require(isinstance(units, list) and len(units) >= 2
             and all(_is_int(u) and 1 <= u <= _MAX_UNITS for u in units),
             f"units {units!r}: a list of at least 2 positive sizes")
    attrs = meta.get("attributes")
    _require(isinstance(attrs, dict), "no fitted attributes")
    for name, value in attrs.items():
        _require(name in _SCALARS and isinstance(value, _SCALARS[name])
                 and not (isinstance(value, bool) and _SCALARS[name] is int),
                 f"fitted attribute {name}={value!r}")
    counters = ("t_", "_n_updates") if meta["version"] >= 2 else ("t_",)
    for name in ("n_features_in_", "n_layers_", "n_outputs_", "n_iter_", "_seed",
                 "_fitted_task", "out_activation_") + counters:
        _require(name in attrs, f"fitted attribute {name} missing")
    _require(meta["version"] >= 2 or "_n_updates" not in attrs,
             "fitted attribute _n_updates in a version 1 file")
    _require(attrs["n_features_in_"] == units[0] and attrs["n_outputs_"] == units[-1]
             and attrs["n_layers_"] == len(units), "units disagree with n_features_in_, "
             "n_outputs_ and n_layers_")
    # the update count is an int64 in C, which adds the updates of an epoch to it; every
    # update takes one sample at least (the epochs' counts are checked with the history)
    n_updates = attrs["_n_updates"] if meta["version"] >= 2 else attrs["t_"]
    _require(all(0 <= c <= _MAX_COUNT for c in (attrs["n_iter_"], attrs["t_"], n_updates))
             and n_updates <= attrs["t_"],
             f"counters n_iter_={attrs['n_iter_']}, t_={attrs['t_']}, _n_updates={n_updates}: "
             f"fit makes 0 <= _n_updates <= t_, the samples seen (at most {_MAX_COUNT})")
    _require(0 <= attrs["_seed"] < 2**64, f"seed {attrs['_seed']}: not a 64-bit seed")
    spec = meta.get("fitted_spec")
    hidden = len(units) - 2
    _require(isinstance(spec, dict) and set(spec) == {"activation", "batch_norm", "dropout"}
             and spec["activation"] in ("identity", "relu", "tanh", "sigmoid", "logistic")
             and isinstance(spec["batch_norm"], bool)
             and isinstance(spec["dropout"], list) and len(spec["dropout"]) == hidden
             and all(isinstance(p, (int, float)) and 0 <= p < 1 for p in spec["dropout"]),
             f"fitted architecture {spec!r}")
    task = attrs["_fitted_task"]
    _require(task in ("classification", "regression") and model._task in (None, task),
             f"task {task!r} for a {type(model).__name__}")
    _require(isinstance(meta.get("normalized"), bool), "normalized must be true or false")
    _require(isinstance(model, Autoencoder) or "autoencoder" not in meta,
             f"autoencoder fields for a {type(model).__name__}")
    if isinstance(model, Autoencoder):
        _check_autoencoder(meta, units)
    layout = _layout(meta)
    _require(meta.get("params_dtype") in _DTYPES, f"params dtype {meta.get('params_dtype')!r}")
    dtype = np.dtype(meta["params_dtype"])
    history = meta.get("loss_curve_length"), meta.get("validation_scores_length")
    # one loss, and with early stopping one validation score, per epoch
    _require(history[0] == attrs["n_iter_"] and history[1] in (None, attrs["n_iter_"]),
             f"history lengths {history} for n_iter_={attrs['n_iter_']}")
    arrays = {"params": (_dtype_is(dtype), (layout["size"],)),
              "loss_curve": (_dtype_is(np.float64), (history[0],))}
    if meta.get("history_columns") is not None:  # files from before history_ have none
        _require(meta["history_columns"] == RECORD_KEYS,
                 f"history columns {meta['history_columns']!r}, expected {RECORD_KEYS}")
        arrays["history"] = (_dtype_is(np.float64), (history[0], len(RECORD_KEYS)))
    if meta.get("has_state") is True:
        rows = state_slots(_state_solver(meta, model)) if meta["version"] >= 3 else 2
        arrays["state"] = (_dtype_is(dtype), (rows * layout["n_trainable"],))
    if history[1] is not None:
        arrays["validation_scores"] = (_dtype_is(np.float64), (history[1],))
    if meta.get("rng") is not None:
        arrays["rng"] = (_dtype_is(np.uint32), (_RNG_WORDS,))
    if task == "classification":
        label_type = meta.get("label_type")
        _require(label_type in ("binary", "multiclass", "multilabel-indicator"),
                 f"label type {label_type!r}")
        n_out = units[-1]
        n_classes = meta.get("n_classes", 2) if label_type == "binary" else n_out
        _require(label_type != "binary" or n_out == 1 and n_classes in (1, 2),
                 "a binary model has one output and 1 or 2 classes")
        _require(label_type != "multiclass" or n_out >= 3,
                 "a multiclass model has 3 outputs or more (2 classes are binary)")
        arrays["classes"] = (lambda d: d.kind in "biufU", (n_classes,))
    return arrays


def _read_npy(archive, info, dtype_ok, shape):
    """One .npy member, checked before its data is allocated: dtype, shape and stored size."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        _require(version in ((1, 0), (2, 0)), f"{info.filename}: .npy version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        header_shape, fortran, dtype = read_header(member)
        header_bytes = member.tell()
        _require(not dtype.hasobject and dtype.fields is None and dtype_ok(dtype),
                 f"{info.filename}: dtype {dtype}")
        _require(tuple(header_shape) == shape and not fortran,
                 f"{info.filename}: shape {header_shape}, the metadata implies {shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        _require(info.file_size == header_bytes + nbytes,
                 f"{info.filename}: {info.file_size - header_bytes} data bytes for "
                 f"{nbytes} expected")
        buffer = bytearray(nbytes)
        view, at = memoryview(buffer), 0
        while at < nbytes:  # in slices: readinto reads through a bytes object of its size
            got = member.readinto(view[at:at + _READ_BYTES])
            _require(got > 0, f"{info.filename}: truncated")
            at += got
        _require(member.read(1) == b"", f"{info.filename}: trailing bytes")  # CRC checked here
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _fitted_scalars(meta, arrays):
    """The fitted scalar attributes as this version has them. A version 1 file stored the
    update count as t_: it becomes _n_updates, and t_ the training samples seen
    (scikit-learn's meaning), counted from the history, where each stochastic epoch's record
    keeps samples_per_s = rows / max(seconds, 1e-12): rows = samples_per_s * max(seconds,
    1e-12) to within a few float64 roundings, which round back to the exact count (L-BFGS
    iterations, learning rate 0 in the record, see no samples, as in scikit-learn). The
    samples of warm-started fits before the last one are not in the file (version 1 reset its
    t_ and history there): those, and a file from before history_, which keeps no rows, load
    with t_ = the update count, the least number of samples that many updates take."""
    attrs = dict(meta["attributes"])
    if meta["version"] >= 2:
        return attrs
    n_updates = attrs["t_"]
    attrs["_n_updates"] = n_updates
    history = arrays.get("history")
    if history is None:
        return attrs
    column = {key: history[:, i] for i, key in enumerate(RECORD_KEYS)}
    stochastic = column["learning_rate"] > 0
    rows = np.round(column["samples_per_s"][stochastic]
                    * np.maximum(column["seconds"][stochastic], 1e-12))
    _require(np.all(np.isfinite(rows) & (rows >= 1) & (rows <= _MAX_COUNT)),
             "history.npy: an epoch's samples_per_s and seconds give no count of rows")
    attrs["t_"] = sum(int(r) for r in rows)  # exactly, in Python integers
    _require(n_updates <= attrs["t_"] <= _MAX_COUNT,
             f"counters: the history's epochs saw {attrs['t_']} samples for {n_updates} "
             f"updates (fit makes 0 <= updates <= samples <= {_MAX_COUNT})")
    return attrs


def _check_values(model, meta, arrays, attrs):
    """Every loaded value as fit leaves it: a file that parses but holds values no fit could
    make (a NaN weight, a negative sum of squares, unsorted classes) would load, then predict
    NaN or train wrongly, so it is refused here."""
    units = meta["units"]
    layout = _layout(meta)
    params = arrays["params"]
    _check_hyperparameters(model, params.dtype)
    _require(np.isfinite(params).all(), "params.npy holds NaN or infinite parameters")
    _require(_ties_hold(layout, params),
             "params.npy: a tied decoder matrix is not the transpose of its encoder matrix")
    for offset, n in zip(layout["var_offset"], units[1:-1]):
        _require(np.all(params[offset:offset + n] >= 0), "a batch-norm running variance is "
                 "negative")
    n = layout["n_normalized"]
    _require(np.all(params[layout["shift_offset"] + n:][:n] > 0),
             "an input scale is not positive")
    state = arrays.get("state")
    if state is not None:
        _require(np.isfinite(state).all(), "state.npy holds NaN or infinite values")
        # the half of the state that sums squared gradients, for the solver that made it
        solver = _state_solver(meta, model)
        squares = {"adam": state[layout["n_trainable"]:], "adagrad": state[:layout["n_trainable"]],
                   "rmsprop": state[:layout["n_trainable"]]}.get(solver)
        _require(squares is None or np.all(squares >= 0),
                 f"state.npy: {solver}'s sums of squared gradients are negative")
    # every epoch of a stochastic solver makes one update at least; L-BFGS iterations (learning
    # rate 0 in their records) make none
    history = arrays.get("history")
    if history is not None:
        # the update count restarts with a new solver's state (set_params(solver=...), then
        # partial_fit): only the epochs since then count
        since = _state_since(meta, len(history))
        stochastic = int(np.count_nonzero(history[since:, RECORD_KEYS.index("learning_rate")]
                                          > 0))
    else:  # a file from before history_
        stochastic = 0 if model.solver == "lbfgs" and attrs["_n_updates"] == 0 \
            else attrs["n_iter_"]
    _require(stochastic <= attrs["_n_updates"],
             f"counters: {stochastic} epochs of a stochastic solver in the history since "
             f"its state began, {attrs['_n_updates']} updates (each epoch makes one at least)")
    # each epoch's loss is a mean of non-negative losses plus a non-negative penalty
    curve = arrays["loss_curve"]
    _require(np.isfinite(curve).all() and np.all(curve >= 0),
             "loss_curve.npy holds negative, NaN or infinite losses")
    scores = arrays.get("validation_scores")
    # NaN is a score: R^2 of a single held-out sample
    _require(scores is None or not np.any(scores > 1),
             "validation_scores.npy holds scores above 1 (accuracy and R^2 are at most 1)")
    if len(curve):
        _require(attrs.get("loss_") == curve[-1], f"loss_={attrs.get('loss_')!r} is not the "
                 "last loss of the loss curve")
    best = attrs.get("best_loss_")
    _require(best is None or best >= 0, f"best_loss_={best!r}")  # NaN fails too
    best = attrs.get("best_validation_score_")
    _require(best is None or not best > 1, f"best_validation_score_={best!r}")
    if attrs["_fitted_task"] == "classification":
        classes = arrays["classes"]
        if meta["label_type"] == "multilabel-indicator":
            # the binarizer names a multilabel matrix's columns 0 .. n_outputs - 1
            _require(classes.dtype.kind in "iu"
                     and np.array_equal(classes, np.arange(len(classes))),
                     f"multilabel classes {classes.tolist()!r}: the columns 0 .. "
                     f"{len(classes) - 1}")
        else:
            _require(classes.dtype.kind != "f" or np.isfinite(classes).all(),
                     f"classes {classes.tolist()!r} are not finite")
            # as LabelBinarizer makes them: each label once, sorted
            _require(np.array_equal(np.unique(classes), classes),
                     f"classes {classes.tolist()!r} are not unique and sorted")
    elif attrs.get("_y_1d"):
        _require(units[-1] == 1, "a model of a 1-d target has one output")


def _state_since(meta, epochs):
    """The history's index of the first epoch of the saved state (files from before it: 0, a
    state as old as the history), one of the `epochs` recorded or their end."""
    since = meta.get("state_since", 0)
    _require(_is_int(since) and 0 <= since <= epochs,
             f"state_since {since!r}: an index into the {epochs} epochs of the history")
    return since


def _state_solver(meta, model):
    """The solver that made state.npy: the metadata's (files from before it say nothing:
    then the model's own solver)."""
    solver = meta.get("state_solver", model.solver)
    solvers = sorted(Network._parameter_constraints["solver"][0].options)  # as fit takes them
    _require(isinstance(solver, str) and solver in solvers,
             f"state_solver {solver!r}, expected one of {solvers}")
    return solver


def _restore(model, meta, arrays):
    """Set the fitted state on `model` from validated metadata and arrays."""
    attrs = _fitted_scalars(meta, arrays)
    _check_values(model, meta, arrays, attrs)
    for name, value in attrs.items():
        setattr(model, name, value)
    units = meta["units"]
    spec = meta["fitted_spec"]
    layout = _layout(meta)
    fitted_spec = {"activation": spec["activation"], "batch_norm": spec["batch_norm"],
                   "dropout": [float(p) for p in spec["dropout"]]}
    model._state_solver = _state_solver(meta, model)
    model._state_since = _state_since(meta, len(arrays["loss_curve"]))
    state = arrays.get("state")
    model._state = None if state is None else state_values(state, layout["n_trainable"],
                                                           model._state_solver)
    model.loss_curve_ = arrays["loss_curve"].tolist()
    scores = arrays.get("validation_scores")
    model.validation_scores_ = None if scores is None else scores.tolist()
    if "history" in arrays:
        rows = arrays["history"].tolist()
    else:  # what the older file knows: the losses and scores, the rest unknown (NaN)
        rows = [[i + 1, loss, np.nan, np.nan if scores is None else scores[i]]
                + [np.nan] * (len(RECORD_KEYS) - 4)
                for i, loss in enumerate(model.loss_curve_)]
    # the records' layer health is not in the file (history.npy holds the numeric keys)
    model.history_ = History(
        dict({k: (None if v != v else int(v) if k in ("epoch", "threads") else float(v))
              for k, v in zip(RECORD_KEYS, row)}, **{HEALTH_KEY: None}) for row in rows)
    model.validation_loss_curve_ = None if scores is None else \
        [r["valid_loss"] for r in model.history_]
    names = meta.get("feature_names_in")
    if names is not None:
        _require(isinstance(names, list) and len(names) == units[0]
                 and all(isinstance(n, str) for n in names), "feature_names_in")
        model.feature_names_in_ = np.asarray(names, dtype=object)
    if "rng" in arrays:
        rng = meta["rng"]
        _require(isinstance(rng, dict) and _is_int(rng.get("pos"))
                 and 0 <= rng["pos"] <= _RNG_WORDS and rng.get("has_gauss") in (0, 1)
                 and isinstance(rng.get("gauss"), (int, float)), "random generator state")
        model._rng = np.random.RandomState()
        model._rng.set_state(("MT19937", arrays["rng"], rng["pos"], rng["has_gauss"],
                              float(rng["gauss"])))
    schedule = meta.get("schedule")
    if schedule is not None:
        model._schedule = _schedule(schedule)
    if attrs["_fitted_task"] == "classification":
        binarizer = LabelBinarizer()
        binarizer.classes_ = arrays["classes"]
        binarizer.y_type_ = meta["label_type"]
        binarizer.sparse_input_ = False
        model._label_binarizer = binarizer
        model.classes_ = binarizer.classes_
        out = {"multiclass": "softmax"}.get(meta["label_type"], "logistic")
        _require(model.out_activation_ == out, f"out_activation_ {model.out_activation_!r} "
                 f"for {meta['label_type']} labels")
    elif isinstance(model, Autoencoder):
        _require(model.out_activation_ in ("identity", "logistic") and "_y_1d" in attrs,
                 "an autoencoder has identity or logistic outputs and knows its target shape")
        model.n_components_ = units[(len(units) - 1) // 2]
    else:
        _require(model.out_activation_ in ("identity", "exp") and "_y_1d" in attrs,
                 "a regression model has identity (or, loss='poisson', exp) outputs and knows "
                 "its target shape")
    model._adopt(layout, arrays["params"], fitted_spec)


def _schedule(state):
    fields = {"kind": str, "learning_rate": (int, float), "tol": (int, float),
              "n_iter_no_change": (int, float), "best": (int, float),
              "epochs_without_improvement": int,
              "halvings": int}
    _require(isinstance(state, dict) and set(state) == set(fields)
             and all(isinstance(state[k], t) for k, t in fields.items())
             and state["kind"] in ("constant", "invscaling", "plateau", "adaptive")
             and 0 < state["learning_rate"] < np.inf
             and state["tol"] >= 0
             and (_is_int(state["n_iter_no_change"]) and state["n_iter_no_change"] >= 1
                  or state["n_iter_no_change"] == np.inf)
             and not np.isnan(state["best"]) and state["epochs_without_improvement"] >= 0
             and 0 <= state["halvings"] <= MAX_HALVINGS,
             f"learning-rate schedule state {state!r}")
    schedule = LearningRateSchedule(state["kind"], state["learning_rate"], state["tol"],
                                    state["n_iter_no_change"])
    vars(schedule).update(state)
    return schedule


def _class_weight_json(class_weight):
    """A class_weight dict as [[label, weight], ...] (JSON keys would all become strings)."""
    if isinstance(class_weight, dict):
        return {"pairs": [[k, v] for k, v in class_weight.items()]}
    if isinstance(class_weight, list):
        return [_class_weight_json(w) for w in class_weight]
    return class_weight


def _class_weight_from_json(value):
    if isinstance(value, dict):
        pairs = value.get("pairs")
        _require(set(value) == {"pairs"} and isinstance(pairs, list)
                 and all(isinstance(p, list) and len(p) == 2 for p in pairs),
                 f"class_weight {value!r}")
        return {k: v for k, v in pairs}
    if isinstance(value, list):
        return [_class_weight_from_json(w) for w in value]
    return value


def _jsonable(value):
    """Hyperparameters and fitted scalars as JSON values (tuples and numpy scalars become
    lists and Python numbers)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"fastmlp.save cannot store {value!r} ({type(value).__name__}) as JSON")


def _dtype_is(expected):
    expected = np.dtype(expected)
    return lambda dtype: dtype == expected


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _require(condition, message):
    if not condition:
        raise ValueError(message)


def _fastmlp_version():
    from . import __version__
    return __version__
