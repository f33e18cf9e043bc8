"""Pickle round trips, and fastmlp.save / fastmlp.load: the same model back, training that
continues where it stopped, and hostile, damaged or foreign files refused with ValueError."""
import io
import json
import os
import pickle
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
    assert copy.t_ == model.t_ and copy.loss_curve_ == model.loss_curve_


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
    assert meta["format"] == "fastmlp-model" and meta["version"] == 1
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


def test_damaged_bytes_are_refused(tmp_path):
    """A flipped byte anywhere in a member's data fails its CRC; in headers, the parse."""
    path = saved(tmp_path)
    data = path.read_bytes()
    broken = tmp_path / "broken.fmlp"
    refused = 0
    for at in range(0, len(data), max(1, len(data) // 80)):
        damaged = bytearray(data)
        damaged[at] ^= 0xFF
        broken.write_bytes(bytes(damaged))
        try:
            fastmlp.load(broken)
        except ValueError:
            refused += 1
    # a few bytes (zip timestamps, unused header fields) do not matter; the rest must
    assert refused >= 0.8 * len(range(0, len(data), max(1, len(data) // 80)))
    params_at = data.find(b"params.npy", 0) + len("params.npy") + 200
    damaged = bytearray(data)
    damaged[params_at] ^= 0x01
    broken.write_bytes(bytes(damaged))
    with pytest.raises(ValueError):
        fastmlp.load(broken)


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
    (lambda m: m.update(version=2), "version 2"),
    (lambda m: m.update({"class": "os.system"}), "unknown estimator class"),
    (lambda m: m["params"].update(activation="evil"), "activation"),
    (lambda m: m["params"].update(__class__="x"), "unknown hyperparameters"),
    (lambda m: m["params"].update(dtype="object"), "dtype"),
    (lambda m: m["attributes"].update(n_outputs_=4), "units disagree"),
    (lambda m: m["attributes"].update(n_iter_="many"), "n_iter_"),
    (lambda m: m.update(label_type="continuous"), "label type"),
    (lambda m: m["fitted_spec"].update(dropout=[2.0, 0.0]), "fitted architecture"),
    (lambda m: m.update(loss_curve_length=3), "loss_curve.npy: shape"),
    (lambda m: m.update(has_state=False), "members"),
    (lambda m: m["rng"].update(pos=10**6), "random generator"),
])
def test_tampered_metadata_is_refused(edit, message, tmp_path):
    path = edited(saved(tmp_path), tmp_path, metadata=edit)
    with pytest.raises(ValueError, match=message):
        fastmlp.load(path)


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
