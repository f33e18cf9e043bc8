"""Pickle round trips, and fastmlp.save / fastmlp.load: the same model back, training that
continues where it stopped, and hostile, damaged or foreign files refused with ValueError."""
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import LabelBinarizer

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor, Network
from fastmlp.network import NOT_PERSISTED
from fastmlp.schedules import LearningRateSchedule

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

rng = np.random.RandomState(0)
X = rng.normal(size=(80, 5)) * [1, 2, 3, 4, 5] + [0, 1, 0, 1, 0]
X[:, 4] = rng.randint(0, 2, 80)  # a {0, 1} column: left unnormalized
LABELS = np.array(["ant", "bee", "cat"])[rng.randint(0, 3, 80)]
Y_REG = np.column_stack([X[:, 0] - X[:, 1], X[:, 2]])
MULTILABEL = (rng.rand(80, 4) < 0.4).astype(int)

CASES = {
    "multiclass strings": (MLPClassifier, dict(), X, LABELS),
    "binary ints": (MLPClassifier, dict(hidden_layer_sizes=(6,)), X, (X[:, 0] > 0).astype(int)),
    "multilabel": (MLPClassifier, dict(activation="tanh"), X, MULTILABEL),
    "regression 1d": (MLPRegressor, dict(solver="sgd", momentum=0.5), X, Y_REG[:, 0]),
    "regression 2d float64": (MLPRegressor, dict(dtype=np.float64, normalize=None), X, Y_REG),
    "network classifies": (Network, dict(batch_norm=True, dropout=[0.2, 0.1]), X, LABELS),
    "network regresses": (Network, dict(learning_rate="invscaling", solver="rmsprop"), X,
                          Y_REG),
    "early stopping plateau": (MLPClassifier, dict(early_stopping=True, learning_rate="plateau",
                                                   solver="adagrad"), X, LABELS),
    "sparse input": (MLPClassifier, dict(), sp.csr_matrix(np.where(X > 1, X, 0)), LABELS),
    "dataframe": (MLPRegressor, dict(), pd.DataFrame(X, columns=list("abcde")), Y_REG[:, 1]),
    "object labels": (MLPClassifier, dict(), X, pd.Series(LABELS, dtype=object)),
    "bool labels": (MLPClassifier, dict(), X, X[:, 1] > 1),
    "float labels": (MLPClassifier, dict(), X, (X[:, 1] > 1) * 2.0 + 1.0),
    "dtype as text": (MLPRegressor, dict(dtype="float64"), X, Y_REG[:, 0]),
}


def fitted(case):
    cls, params, Xc, yc = CASES[case]
    kw = dict(hidden_layer_sizes=(7, 5), max_iter=4, batch_size=16, random_state=1,
              n_threads=1)
    kw.update(params)
    return cls(**kw).fit(Xc, yc), Xc, yc


def outputs(model, Xc):
    out = [model.predict(Xc)]
    if hasattr(model, "predict_proba"):
        out.append(model.predict_proba(Xc))
    return out


def assert_same_state(a, b):
    """Every attribute of `a` is on `b` with the same value (views are rebuilt, not compared):
    a fitted attribute added later must be persisted, or this fails."""
    assert set(vars(a)) - set(NOT_PERSISTED) == set(vars(b)) - set(NOT_PERSISTED)
    for name, value in vars(a).items():
        if name in set(NOT_PERSISTED):
            continue
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype, name
            np.testing.assert_array_equal(value, other, err_msg=name)
        elif isinstance(value, np.random.RandomState):
            for x, y in zip(value.get_state(), other.get_state()):
                np.testing.assert_array_equal(x, y, err_msg=name)
        elif isinstance(value, (LabelBinarizer, LearningRateSchedule)):
            assert type(value) is type(other)
            assert vars(value).keys() == vars(other).keys(), name
            for key in vars(value):
                np.testing.assert_array_equal(getattr(value, key), getattr(other, key),
                                              err_msg=f"{name}.{key}")
        elif name == "history_":  # a file keeps no layer health (test below)
            assert [dict(r, health=None) for r in value] == [dict(r, health=None)
                                                             for r in other], name
            assert all(b["health"] in (a["health"], None) for a, b in zip(value, other)), name
        elif isinstance(value, dict) and name == "_layout":
            for key in value:
                np.testing.assert_array_equal(value[key], other[key], err_msg=f"_layout {key}")
        else:
            assert value == other or (value != value and other != other), name


def via_pickle(model, tmp_path):
    return pickle.loads(pickle.dumps(model))


def via_file(model, tmp_path):
    path = tmp_path / "model.fmlp"
    fastmlp.save(model, path)
    return fastmlp.load(path)


@pytest.mark.parametrize("roundtrip", [via_pickle, via_file])
@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_predicts_the_same_and_keeps_training(case, roundtrip, tmp_path):
    model, Xc, yc = fitted(case)
    copy = roundtrip(model, tmp_path)
    assert type(copy) is type(model)
    assert copy.get_params() == model.get_params()
    assert_same_state(model, copy)
    for a, b in zip(outputs(model, Xc), outputs(copy, Xc)):
        np.testing.assert_array_equal(a, b)
    # the views are views of the copy's own buffer
    assert np.shares_memory(copy.coefs_[0], copy._params)
    assert not np.shares_memory(copy._params, model._params)
    # partial_fit continues exactly as the original would: same optimizer state, schedule,
    # shuffling generator and update count
    for m in (model, copy):
        m.partial_fit(Xc, yc)
        m.partial_fit(Xc, yc)
    np.testing.assert_array_equal(copy._params, model._params)
    assert copy.t_ == model.t_ and copy._n_updates == model._n_updates
    assert copy.loss_curve_ == model.loss_curve_


def test_a_file_drops_the_layer_health_a_pickle_keeps_it(tmp_path):
    model, _, _ = fitted("multiclass strings")
    assert all(len(r["health"]) == len(model.coefs_) for r in model.history_)
    assert via_pickle(model, tmp_path).history_ == model.history_
    loaded = via_file(model, tmp_path).history_
    assert [r["health"] for r in loaded] == [None] * len(model.history_)
    assert [r["train_loss"] for r in loaded] == [r["train_loss"] for r in model.history_]


def test_saved_file_holds_only_json_and_plain_arrays(tmp_path):
    model, _, _ = fitted("multiclass strings")
    path = tmp_path / "m.fmlp"
    fastmlp.save(model, path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        meta = json.loads(archive.read("metadata.json"))
        for name in names - {"metadata.json"}:
            np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
    assert names == {"metadata.json", "params.npy", "state.npy", "rng.npy", "classes.npy",
                     "loss_curve.npy", "history.npy"}
    assert meta["format"] == "fastmlp-model" and meta["version"] == 3
    assert meta["class"] == "MLPClassifier" and meta["units"] == [5, 7, 5, 3]
    assert b"pickle" not in path.read_bytes()


def test_save_refuses_unfitted_and_foreign_models(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        fastmlp.save(MLPClassifier(), tmp_path / "m.fmlp")
    from sklearn.linear_model import LogisticRegression
    with pytest.raises(TypeError, match="Network, MLPClassifier or MLPRegressor"):
        fastmlp.save(LogisticRegression(), tmp_path / "m.fmlp")


def test_a_random_state_instance_is_saved_as_its_generator(tmp_path):
    model = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2,
                          random_state=np.random.RandomState(3)).fit(X, LABELS)
    copy = via_file(model, tmp_path)
    assert copy.random_state is None
    model.partial_fit(X, LABELS)
    copy.partial_fit(X, LABELS)
    np.testing.assert_array_equal(copy._params, model._params)


# ---------------------------------------------------------------- atomic saves


def two_models():
    small, _, _ = fitted("binary ints")
    big = MLPClassifier(hidden_layer_sizes=(300,), max_iter=1, random_state=0,
                        n_threads=1).fit(X, LABELS)
    return small, big


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_a_full_disk_leaves_the_previous_file_whole(tmp_path):
    """The disk fills (a file-size limit) while a bigger model is saved over a smaller one:
    save raises OSError, the previous file is byte for byte as it was, no temporary file."""
    small, big = two_models()
    fastmlp.save(small, tmp_path / "model.fmlp")
    before = (tmp_path / "model.fmlp").read_bytes()
    fastmlp.save(big, tmp_path / "big.fmlp")
    limit = (len(before) + (tmp_path / "big.fmlp").stat().st_size) // 2
    (tmp_path / "big.fmlp").replace(tmp_path / "big.model")  # not a name save would use
    out = run_python(f"""
        import errno, resource, signal
        import fastmlp
        big = fastmlp.load("big.model")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        try:
            fastmlp.save(big, "model.fmlp")
        except OSError as error:
            print("refused", errno.errorcode[error.errno])
    """, tmp_path)
    assert out.strip() == "refused EFBIG"
    assert (tmp_path / "model.fmlp").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.model", "model.fmlp"]
    np.testing.assert_array_equal(fastmlp.load(tmp_path / "model.fmlp")._params, small._params)


class Interrupted(BaseException):
    pass


def failing_write(original):
    def write_array(file, array, **kwargs):
        file.write(b"\0" * 100)
        raise Interrupted  # Ctrl-C, say, in the middle of a member
    return write_array


@pytest.mark.parametrize("failure", ["write", "fsync", "replace"])
def test_a_failed_save_leaves_the_previous_file_and_no_temporary(failure, tmp_path,
                                                                 monkeypatch):
    small, big = two_models()
    path = tmp_path / "model.fmlp"
    fastmlp.save(small, path)
    before = path.read_bytes()
    if failure == "write":
        monkeypatch.setattr(np.lib.format, "write_array", failing_write(np.lib.format.write_array))
        expected = Interrupted
    else:
        def fail(*args):
            raise OSError(5, f"{failure} failed")
        monkeypatch.setattr(os, failure, fail)
        expected = OSError
    with pytest.raises(expected):
        fastmlp.save(big, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.fmlp"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and links")
def test_save_keeps_permissions_follows_links_and_refuses_special_files(tmp_path):
    small, big = two_models()
    path = tmp_path / "model.fmlp"
    fastmlp.save(small, path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open(path, "w") makes it
    path.chmod(0o640)
    fastmlp.save(big, path)
    assert path.stat().st_mode & 0o777 == 0o640
    np.testing.assert_array_equal(fastmlp.load(path)._params, big._params)
    link = tmp_path / "link.fmlp"
    link.symlink_to(path)
    fastmlp.save(small, link)  # writes the file the link names; the link stays a link
    assert link.is_symlink()
    np.testing.assert_array_equal(fastmlp.load(path)._params, small._params)
    fastmlp.save(small, os.fsencode(tmp_path / "bytes.fmlp"))  # a path given as bytes
    np.testing.assert_array_equal(fastmlp.load(tmp_path / "bytes.fmlp")._params, small._params)
    with pytest.raises(ValueError, match="regular files.*character device"):
        fastmlp.save(small, "/dev/null")
    with pytest.raises(ValueError, match="regular files.*directory"):
        fastmlp.save(small, tmp_path)


# ---------------------------------------------------------------- hostile and broken files


class RunsCode:
    """Unpickling this creates the file `marker`: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def saved(tmp_path, case="multiclass strings"):
    path = tmp_path / "good.fmlp"
    fastmlp.save(fitted(case)[0], path)
    return path


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path, contents, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return path


def npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def edited(path, tmp_path, **changes):
    """A copy of the file at `path` with members replaced (bytes) or the metadata edited
    (metadata=function of the dict)."""
    contents = members(path)
    meta = json.loads(contents["metadata.json"])
    if "metadata" in changes:
        changes.pop("metadata")(meta)
    contents["metadata.json"] = json.dumps(meta).encode()
    for name, data in changes.items():
        contents[name.replace("_npy", ".npy")] = data
    return write_zip(tmp_path / "edited.fmlp", contents)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(RunsCode(marker)))
    pickle.loads(path.read_bytes())  # the file does run code when unpickled...
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match="not a zip"):
        fastmlp.load(path)  # ...but load never unpickles
    assert not marker.exists()


@pytest.mark.parametrize("member", ["params_npy", "classes_npy", "state_npy", "loss_curve_npy"])
def test_pickled_object_arrays_inside_the_archive_are_refused(member, tmp_path):
    marker = tmp_path / "pwned"
    hostile = npy_bytes(np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    path = edited(saved(tmp_path), tmp_path, **{member: hostile})
    with pytest.raises(ValueError, match="dtype object"):
        fastmlp.load(path)
    assert not marker.exists()


def assert_refused_without_allocating(path, match):
    """load raises ValueError(match) having allocated under 10 MB on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            fastmlp.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10**7


def test_a_header_claiming_a_gigantic_array_allocates_nothing(tmp_path):
    path = saved(tmp_path)
    good = members(path)["params.npy"]
    # the same small data under a header that claims 10**12 float32 (4 TB)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10**12,)})
    fake = header.getvalue() + good[len(header.getvalue()):]
    path = edited(path, tmp_path, params_npy=fake)
    assert_refused_without_allocating(path, match="shape")


def test_metadata_claiming_gigantic_layers_allocates_nothing(tmp_path):
    path = edited(saved(tmp_path), tmp_path,
                  metadata=lambda m: m.update(units=[5, 2**31 - 1, 2**31 - 1, 3]))
    assert_refused_without_allocating(path, match="shape")
    path = edited(saved(tmp_path), tmp_path, metadata=lambda m: m.update(units=[5, 10**30, 3]))
    with pytest.raises(ValueError, match="units"):
        fastmlp.load(path)


def test_a_member_claiming_more_bytes_than_the_file_is_refused(tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    # the central directory entry of params.npy: raise its sizes to 2 GB
    entry = data.rfind(b"PK\x01\x02", 0, data.find(b"params.npy", data.find(b"PK\x01\x02")))
    data[entry + 20:entry + 28] = (2**31).to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="valid fastmlp model file"):
        fastmlp.load(path)


def test_every_truncation_is_refused(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.fmlp"
    for size in list(range(0, len(data), max(1, len(data) // 60))) + [len(data) - 1]:
        cut.write_bytes(data[:size])
        with pytest.raises(ValueError, match="valid fastmlp model file"):
            fastmlp.load(cut)


def zip_structure(data):
    """The byte ranges of the zip's own records (local headers, the central directory and
    its end record) in `data`: where a flipped bit changes an offset, a size or a flag."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        start_dir = archive.start_dir
    ranges = [range(info.header_offset, info.header_offset + 30 + len(info.filename))
              for info in infos]
    return ranges + [range(start_dir, len(data))]


def test_every_damaged_byte_is_refused_or_harmless(tmp_path):
    """Fuzzing the format: bits flipped all over the zip's records (sizes, offsets, flags,
    names, the end record) and through the members' data. Every damaged file raises
    ValueError, never RuntimeError (an "encrypted" flag), OSError (an offset before the
    file's start) or anything else, or loads as exactly the saved model (a bit zipfile
    ignores: a timestamp, the creator's version, file attributes)."""
    model, Xc, _ = fitted("early stopping plateau")
    path = tmp_path / "good.fmlp"
    fastmlp.save(model, path)
    data = path.read_bytes()
    expected = model.predict_proba(Xc)
    structural = {at for r in zip_structure(data) for at in r}
    flips = [(at, bit) for at in sorted(structural) for bit in {7, at % 8}]
    flips += [(at, at % 8) for at in range(0, len(data), 97) if at not in structural]
    broken = tmp_path / "broken.fmlp"
    harmless = 0  # the flips that load as the saved model
    for at, bit in flips:
        damaged = bytearray(data)
        damaged[at] ^= 1 << bit
        broken.write_bytes(bytes(damaged))
        try:
            copy = fastmlp.load(broken)
        except ValueError as error:
            assert "is not a valid fastmlp model file" in str(error)
            continue
        harmless += 1
        np.testing.assert_array_equal(copy._params, model._params, err_msg=f"byte {at}")
        np.testing.assert_array_equal(copy.predict_proba(Xc), expected, err_msg=f"byte {at}")
    assert 0 < harmless < 0.5 * len(flips)


def test_an_encrypted_flag_or_an_offset_before_the_start_is_a_value_error(tmp_path):
    data = bytearray(saved(tmp_path).read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        start_dir = archive.start_dir
    encrypted = bytearray(data)
    encrypted[start_dir + 8] |= 0x01  # the first member's general purpose flags: encrypted
    broken = tmp_path / "broken.fmlp"
    broken.write_bytes(bytes(encrypted))
    with pytest.raises(ValueError, match="encrypted"):
        fastmlp.load(broken)
    # the end record's offset of the central directory, raised: every member's offset is
    # then read relative to a start before the file's first byte
    moved = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    offset = int.from_bytes(data[end + 16:end + 20], "little")
    moved[end + 16:end + 20] = (offset + 1000).to_bytes(4, "little")
    broken.write_bytes(bytes(moved))
    with pytest.raises(ValueError, match="before the start of the file|valid fastmlp"):
        fastmlp.load(broken)


def run_python(code, tmp_path):
    """`code` run by a fresh interpreter in tmp_path (for resource limits that must not touch
    the test process); returns its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX pipes and devices")
def test_what_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    """/dev/zero has no end: it was read until the OOM killer stopped the process. A pipe
    would block. Here both, and a folder, are refused under a 2 GiB address-space limit
    (none in the sanitizer build, whose shadow memory needs far more address space)."""
    os.mkfifo(tmp_path / "pipe")
    out = run_python("""
        import os, resource
        if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan reserves terabytes
            resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        import fastmlp
        for path in ("/dev/zero", "pipe", "."):
            try:
                fastmlp.load(path)
            except ValueError as error:
                print(error)
    """, tmp_path)
    assert "/dev/zero is not a valid fastmlp model file: not a regular file but a character " \
           "device" in out
    assert "pipe is not a valid fastmlp model file: not a regular file but a pipe" in out
    assert "not a regular file but a directory" in out


@pytest.mark.parametrize("content, message", [
    (b"", "not a zip"),
    (b"just some text\n", "not a zip"),
    (None, "no metadata.json"),
    ("npz", "no metadata.json"),
])
def test_foreign_files_are_refused(content, message, tmp_path):
    path = tmp_path / "foreign"
    if content is None:
        write_zip(path, {"readme.txt": b"hello"})
    elif content == "npz":
        path = tmp_path / "foreign.npz"
        np.savez(path, params=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format="something-else"), "format"),
    (lambda m: m.update(version=4), "version 4"),
    (lambda m: m.update(version=True), "version True"),
    (lambda m: m.update({"class": "os.system"}), "unknown estimator class"),
    (lambda m: m["params"].update(activation="evil"), "activation"),
    (lambda m: m["params"].update(__class__="x"), "unknown hyperparameters"),
    (lambda m: m["params"].update(dtype="object"), "dtype"),
    (lambda m: m["attributes"].update(n_outputs_=4), "units disagree"),
    (lambda m: m["attributes"].update(n_iter_="many"), "n_iter_"),
    (lambda m: m.update(label_type="continuous"), "label type"),
    (lambda m: m["fitted_spec"].update(dropout=[2.0, 0.0]), "fitted architecture"),
    (lambda m: (m.update(loss_curve_length=3), m["attributes"].update(n_iter_=3)),
     "loss_curve.npy: shape"),
    (lambda m: m.update(loss_curve_length=3), "history lengths"),
    (lambda m: m.update(has_state=False), "members"),
    (lambda m: m["rng"].update(pos=10**6), "random generator"),
])
def test_tampered_metadata_is_refused(edit, message, tmp_path):
    path = edited(saved(tmp_path), tmp_path, metadata=edit)
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)


# values that parse, but that no fit makes: each loaded, then trained or predicted wrongly
# (a rate of -1 climbed the loss, t_ = 2**70 overflowed in partial_fit, NaN classes loaded)
@pytest.mark.parametrize("edit, message", [
    (lambda m: m["schedule"].update(learning_rate=-1.0), "schedule state"),
    (lambda m: m["schedule"].update(learning_rate=float("inf")), "schedule state"),
    (lambda m: m["schedule"].update(halvings=9), "schedule state"),
    (lambda m: m["schedule"].update(best=float("nan")), "schedule state"),
    (lambda m: m["schedule"].update(n_iter_no_change=0), "schedule state"),
    (lambda m: m["attributes"].update(t_=2**70), "counters"),
    (lambda m: m["attributes"].update(t_=2), "counters"),  # fewer samples than updates
    (lambda m: m["attributes"].update(_n_updates=2**70), "counters"),
    (lambda m: m["attributes"].update(_n_updates=-1), "counters"),
    (lambda m: m["attributes"].update(_n_updates=2), "counters"),  # fewer updates than epochs
    (lambda m: m["attributes"].pop("_n_updates"), "_n_updates missing"),
    (lambda m: m.update(version=1), "_n_updates in a version 1 file"),
    (lambda m: m["attributes"].update(_seed=2**64), "seed"),
    (lambda m: m["attributes"].update(loss_=float("nan")), "loss_"),
    (lambda m: m["attributes"].update(loss_=0.5), "loss_"),
    (lambda m: m["attributes"].update(best_loss_=-1.0), "best_loss_"),
    (lambda m: m["params"].update(learning_rate_init=-1.0), "learning_rate_init"),
    (lambda m: m["params"].update(hidden_layer_sizes=[3, 0]), "hidden_layer_sizes"),
    (lambda m: m["params"].update(dropout=[0.1, 0.2, 0.3]), "dropout"),
    (lambda m: m["params"].update(n_threads=2**40), "n_threads"),
    (lambda m: m["params"].update(alpha=float("nan")), "alpha"),
    (lambda m: m["params"].update(epsilon=1e-300), "epsilon=1e-300 cannot be represented in "
                                                   "float32"),
])
def test_values_no_fit_makes_are_refused(edit, message, tmp_path):
    path = edited(saved(tmp_path), tmp_path, metadata=edit)
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)


def with_array(path, tmp_path, member, change):
    """A copy of the file with one array member changed by change(array) (in place)."""
    array = np.load(io.BytesIO(members(path)[member + ".npy"])).copy()
    change(array)
    return edited(path, tmp_path, **{member + "_npy": npy_bytes(array)})


def first_var(model):
    return model._layout["var_offset"][0]


@pytest.mark.parametrize("case, member, change, message", [
    ("network classifies", "params", lambda a: a.__setitem__(3, np.nan), "NaN or infinite"),
    ("network classifies", "params", lambda a: a.__setitem__(-1, np.inf), "NaN or infinite"),
    ("network classifies", "params", lambda a: a.__setitem__(-1, 0.0), "input scale"),
    ("network classifies", "params", "running var", "running variance"),
    ("network classifies", "state", lambda a: a.__setitem__(0, np.nan), "state.npy"),
    ("multiclass strings", "state", lambda a: a.__setitem__(-1, -1.0), "squared gradients"),
    ("multiclass strings", "loss_curve", lambda a: a.__setitem__(0, -1.0), "loss_curve"),
    ("early stopping plateau", "validation_scores", lambda a: a.__setitem__(0, 1.5),
     "validation_scores"),
    ("multiclass strings", "classes", lambda a: a.__setitem__(1, "ant"), "unique and sorted"),
    ("multiclass strings", "classes", lambda a: a.__setitem__(slice(None), a[::-1].copy()),
     "unique and sorted"),
    ("float labels", "classes", lambda a: a.__setitem__(0, np.nan), "not finite"),
    ("multilabel", "classes", lambda a: a.__setitem__(0, 7), "multilabel classes"),
])
def test_arrays_no_fit_makes_are_refused(case, member, change, message, tmp_path):
    model = fitted(case)[0]
    path = tmp_path / "good.fmlp"
    fastmlp.save(model, path)
    if change == "running var":
        def change(array, at=first_var(model)):
            array[at] = -1.0
    with pytest.raises(ValueError, match=message):
        fastmlp.load(with_array(path, tmp_path, member, change))


def test_wrong_dtypes_and_compressed_members_are_refused(tmp_path):
    path = saved(tmp_path)
    params = np.load(io.BytesIO(members(path)["params.npy"]))
    with pytest.raises(ValueError, match="dtype float64"):
        fastmlp.load(edited(path, tmp_path, params_npy=npy_bytes(params.astype(np.float64))))
    with pytest.raises(ValueError, match="compressed"):
        fastmlp.load(write_zip(tmp_path / "z.fmlp", members(path), zipfile.ZIP_DEFLATED))
    extra = dict(members(path), **{"extra.npy": npy_bytes(np.zeros(2))})
    with pytest.raises(ValueError, match="members"):
        fastmlp.load(write_zip(tmp_path / "x.fmlp", extra))


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.load(tmp_path / "nowhere.fmlp")


def test_loaded_model_is_a_normal_estimator(tmp_path):
    model, Xc, yc = fitted("multiclass strings")
    copy = via_file(model, tmp_path)
    # writable parameters: in-place edits through the views change the model
    copy.coefs_[-1][...] = 0
    copy.intercepts_[-1][...] = [0, 5, 0]
    assert np.all(copy.predict(Xc) == "bee")
    copy.set_params(max_iter=3).fit(Xc, yc)  # and it refits like any other
    assert copy.n_iter_ == 3
    assert os.path.getsize(tmp_path / "model.fmlp") < 10_000


def test_deeply_nested_metadata_is_refused(tmp_path):
    path = edited(saved(tmp_path), tmp_path)
    contents = members(path)
    contents["metadata.json"] = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ValueError, match="RecursionError"):
        fastmlp.load(write_zip(tmp_path / "deep.fmlp", contents))


# ---------------------------------------------------------------- the counters t_ and _n_updates


def counted(case):
    """A model whose samples seen (t_) and updates (_n_updates) differ, by the named route."""
    kw = dict(hidden_layer_sizes=(4,), random_state=0, n_threads=1)
    if case == "partial_fit":
        model = MLPRegressor(batch_size=16, **kw)
        for n in (80, 31, 7):
            model.partial_fit(X[:n], Y_REG[:n, 0])
    elif case == "early stopping":
        model = MLPClassifier(max_iter=5, early_stopping=True, n_iter_no_change=np.inf,
                              **kw).fit(X, LABELS)
    elif case == "warm start":
        model = MLPClassifier(max_iter=2, **kw).fit(X, LABELS)
        model.set_params(warm_start=True, batch_size=20).fit(X[:60], LABELS[:60])
    elif case == "lbfgs":
        model = MLPClassifier(solver="lbfgs", max_iter=5, **kw).fit(X, LABELS)
    else:  # "lbfgs, then partial_fit": L-BFGS iterations in the history, then one epoch
        model = MLPClassifier(solver="lbfgs", max_iter=5, **kw).fit(X, LABELS)
        model.set_params(solver="adam").partial_fit(X, LABELS)
    return model


COUNTED = {"partial_fit": (80 + 31 + 7, 5 + 2 + 1), "early stopping": (5 * 72, 5),
           "warm start": (2 * 80 + 2 * 60, 2 * 3), "lbfgs": (0, 0),
           "lbfgs, then partial_fit": (80, 1)}


@pytest.mark.parametrize("case", sorted(COUNTED))
def test_both_counters_round_trip(case, tmp_path):
    """t_ (samples seen) and _n_updates (the t of the formulas) come back as saved, and
    training goes on from both; a model trained by L-BFGS, then partial_fit, loads (its
    history has more epochs than updates: L-BFGS iterations make none)."""
    model = counted(case)
    assert (model.t_, model._n_updates) == COUNTED[case]
    copy = via_file(model, tmp_path)
    assert (copy.t_, copy._n_updates) == COUNTED[case]
    if case != "lbfgs":
        for m in (model, copy):
            m.partial_fit(X[:10], m.predict(X[:10]))
        assert (copy.t_, copy._n_updates) == (model.t_, model._n_updates) \
            == (COUNTED[case][0] + 10, COUNTED[case][1] + 1)
        np.testing.assert_array_equal(copy._params, model._params)


def as_version_2(path, tmp_path, **changes):
    """The file as format version 2 wrote it: the same, but for a state.npy of two rows of
    n_trainable for every solver, the rows the solver does not use zeros."""
    contents = members(path)
    meta = json.loads(contents["metadata.json"])
    if meta["has_state"] and "state_npy" not in changes:
        state = np.load(io.BytesIO(contents["state.npy"]))
        n = fastmlp.persistence._layout(meta)["n_trainable"]
        two_rows = np.zeros(2 * n, state.dtype)
        two_rows[:state.size] = state
        changes["state_npy"] = npy_bytes(two_rows)
    metadata = changes.pop("metadata", lambda meta: None)

    def downgrade(meta):
        meta["version"] = 2
        metadata(meta)
    return edited(path, tmp_path, metadata=downgrade, **changes)


def as_version_1(path, tmp_path, **changes):
    """The file as the previous format wrote it (checked against files fastmlp 0.x wrote
    before t_ took scikit-learn's meaning: the same members, and metadata that differs only
    here): version 1, the update count stored as t_, no _n_updates, and version 2's state."""
    def downgrade(meta):
        meta["version"] = 1
        meta["attributes"]["t_"] = meta["attributes"].pop("_n_updates")
    return as_version_2(path, tmp_path, metadata=downgrade, **changes)


@pytest.mark.parametrize("case", sorted(COUNTED))
def test_a_version_1_file_loads_with_the_samples_its_history_holds(case, tmp_path):
    """A version 1 t_ is the update count: it becomes _n_updates, and t_ the samples seen,
    counted exactly from each epoch's samples_per_s * seconds. Only what the file never knew
    is missing: the samples of a warm-started fit's earlier fits."""
    model = counted(case)
    path = tmp_path / "v2.fmlp"
    fastmlp.save(model, path)
    copy = fastmlp.load(as_version_1(path, tmp_path))
    samples = model.t_ - (2 * 80 if case == "warm start" else 0)
    assert (copy.t_, copy._n_updates) == (samples, model._n_updates)
    np.testing.assert_array_equal(copy._params, model._params)
    resaved = tmp_path / "resaved.fmlp"
    fastmlp.save(copy, resaved)  # and it is written back as version 3
    with zipfile.ZipFile(resaved) as archive:
        meta = json.loads(archive.read("metadata.json"))
    assert meta["version"] == 3 and meta["attributes"]["t_"] == samples


def test_a_version_1_file_without_a_history_takes_the_update_count(tmp_path):
    """Files from before history_ keep no rows per epoch: t_ is then the update count, the
    fewest samples that many updates take."""
    model = counted("partial_fit")
    path = tmp_path / "v2.fmlp"
    fastmlp.save(model, path)
    contents = members(as_version_1(path, tmp_path))
    del contents["history.npy"]
    meta = json.loads(contents["metadata.json"])
    meta["history_columns"] = None
    contents["metadata.json"] = json.dumps(meta).encode()
    copy = fastmlp.load(write_zip(tmp_path / "old.fmlp", contents))
    assert copy.t_ == copy._n_updates == model._n_updates
    assert copy.history_[0]["samples_per_s"] is None


@pytest.mark.parametrize("column, value, message", [
    ("samples_per_s", np.nan, "no count of rows"),
    ("samples_per_s", -5.0, "no count of rows"),
    ("seconds", np.inf, "no count of rows"),
    ("samples_per_s", 1e-30, "no count of rows"),  # less than one row
])
def test_a_version_1_history_that_counts_no_rows_is_refused(column, value, message,
                                                            tmp_path):
    model = counted("partial_fit")
    path = tmp_path / "v2.fmlp"
    fastmlp.save(model, path)
    history = np.load(io.BytesIO(members(path)["history.npy"])).copy()
    history[1, fastmlp.training.RECORD_KEYS.index(column)] = value
    with pytest.raises(ValueError, match=message):
        fastmlp.load(as_version_1(path, tmp_path, history_npy=npy_bytes(history)))


def test_a_version_1_history_of_fewer_samples_than_updates_is_refused(tmp_path):
    model = counted("partial_fit")
    path = tmp_path / "v2.fmlp"
    fastmlp.save(model, path)
    history = np.load(io.BytesIO(members(path)["history.npy"])).copy()
    keys = fastmlp.training.RECORD_KEYS
    history[:, keys.index("samples_per_s")] = 1 / history[:, keys.index("seconds")]
    with pytest.raises(ValueError, match="counters: the history's epochs saw 3 samples for 8"):
        fastmlp.load(as_version_1(path, tmp_path, history_npy=npy_bytes(history)))


@pytest.mark.parametrize("solver, rows", [("sgd", 1), ("adam", 2), ("adagrad", 1),
                                          ("lbfgs", 0)])
def test_the_state_holds_the_rows_its_solver_uses_and_a_version_2_file_loads(solver, rows,
                                                                              tmp_path):
    """state.npy holds the solver's rows of n_trainable (version 3); a version 2 file's two
    rows load as the rows the solver uses, and partial_fit goes on bitwise as from the
    fitted model."""
    model = MLPRegressor(hidden_layer_sizes=(6,), solver=solver, max_iter=3, batch_size=20,
                         random_state=0, n_threads=1).fit(X, Y_REG[:, 0])
    n = model._layout["n_trainable"]
    assert model._state.shape == (rows * n,)
    path = tmp_path / "m.fmlp"
    fastmlp.save(model, path)
    assert np.load(io.BytesIO(members(path)["state.npy"])).shape == (rows * n,)
    copy = fastmlp.load(as_version_2(path, tmp_path))
    assert np.load(io.BytesIO(members(tmp_path / "edited.fmlp")["state.npy"])).shape == (2 * n,)
    np.testing.assert_array_equal(copy._state, model._state)
    if solver != "lbfgs":
        for m in (model, copy):
            m.partial_fit(X[:40], Y_REG[:40, 0])
        np.testing.assert_array_equal(copy._params, model._params)
        np.testing.assert_array_equal(copy._state, model._state)


def test_a_partial_fit_after_a_solver_change_saves_and_loads(tmp_path):
    """set_params(solver=...) then partial_fit starts a new optimizer, whose update count
    restarts while the history goes on (found by the fuzz test: such a model saved, then was
    refused by load as having fewer updates than epochs). The file says where the state
    began; the loaded copy trains on as the original does."""
    model = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", random_state=0, n_threads=1)
    model.partial_fit(X[:20], LABELS[:20], classes=np.unique(LABELS))
    model.partial_fit(X[:20], LABELS[:20])
    model.set_params(solver="adam").partial_fit(X[:20], LABELS[:20])
    assert (model.n_iter_, model._n_updates, model._state_since) == (3, 1, 2)
    copy = via_file(model, tmp_path)
    assert (copy.n_iter_, copy._n_updates, copy._state_since) == (3, 1, 2)
    for m in (model, copy):
        m.partial_fit(X[:20], LABELS[:20])
    assert (copy._n_updates, copy._state_since) == (model._n_updates, model._state_since) \
        == (2, 2)
    np.testing.assert_array_equal(copy._params, model._params)
    # a fit starts the history and the state together
    assert model.fit(X, LABELS)._state_since == 0


@pytest.mark.parametrize("since, message", [
    (5, "state_since 5"), (-1, "state_since -1"), ("0", "state_since '0'"),
    (0, "counters"),  # the sgd epochs before the change counted against adam's 1 update
])
def test_a_bad_state_since_is_refused(since, message, tmp_path):
    model = MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", random_state=0, n_threads=1)
    model.partial_fit(X[:20], LABELS[:20], classes=np.unique(LABELS))
    model.partial_fit(X[:20], LABELS[:20])
    model.set_params(solver="adam").partial_fit(X[:20], LABELS[:20])
    path = tmp_path / "model.fmlp"
    fastmlp.save(model, path)
    path = edited(path, tmp_path, metadata=lambda m: m.update(state_since=since))
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)
