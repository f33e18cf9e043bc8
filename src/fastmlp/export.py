"""ONNX export: a fitted fastmlp estimator as an ONNX graph, and fastmlp's converter for skl2onnx.

The graph is the network as prediction runs it, folded into plain dense layers: the input
standardization of ``normalize="auto"`` goes into the first layer and each batch norm into its
own layer (exact algebra, done in float64 and rounded once to the model's dtype), dropout is
gone. What is left is MatMul, Add and the activations, as in skl2onnx's converter for
scikit-learn's MLP.

skl2onnx, onnx and onnxruntime come with the ``onnx`` extra (``pip install fastmlp[onnx]``) and
are imported only here, when an export is asked for."""
import numpy as np

from .estimators import MLPClassifier, MLPRegressor
from .network import Network

__all__ = ["to_onnx", "register_skl2onnx", "folded_layers"]

# FASTMLP_BN_EPS in csrc/fastmlp.h: the epsilon of batch norm's sqrt(running_var + eps)
BATCHNORM_EPS = 1e-5

_ALIASES = {Network: "FastmlpNetwork", MLPClassifier: "FastmlpMLPClassifier",
            MLPRegressor: "FastmlpMLPRegressor"}
_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "logistic": "Sigmoid",
                "identity": None}
# the output units: softmax over the row, logistic per unit, identity, and exp (the log link of
# MLPRegressor(loss="poisson"))
_OUT_ACTIVATIONS = {"softmax": "Softmax", "logistic": "Sigmoid", "identity": None, "exp": "Exp"}
_registered = False


def _is_classifier(model):
    return model._fitted_task == "classification"


def _fitted(model):
    """The fitted fastmlp model, or a TypeError / NotFittedError naming what is wrong."""
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(model, Network):
        raise TypeError(f"to_onnx converts fastmlp's estimators (Network, MLPClassifier, "
                        f"MLPRegressor); got {type(model).__name__}. Convert a Pipeline that "
                        "holds one with skl2onnx.to_onnx after fastmlp.export.register_skl2onnx()")
    check_is_fitted(model, "_params")
    if model.out_activation_ not in _OUT_ACTIVATIONS:
        raise ValueError(f"no ONNX form for the output activation {model.out_activation_!r}")
    if model._fitted_spec["activation"] not in _ACTIVATIONS:
        raise ValueError(f"no ONNX form for the activation {model._fitted_spec['activation']!r}")
    return model


def folded_layers(model):
    """The network's layers as plain dense layers, with standardization and batch norm folded in.

    Prediction computes, for each layer, ``g(h @ W + b)``; ``normalize="auto"`` first maps the
    input to ``(x - shift) * scale`` and a batch-norm layer maps its bias-free pre-activation
    ``a = h @ W`` to ``a * s + (beta - running_mean * s)``, ``s = gamma / sqrt(running_var +
    1e-5)``. Both are affine, so they fold exactly into the weights::

        W_l' = W_l * s,  b_l' = beta - running_mean * s            (batch norm)
        W_0' = scale[:, None] * W_0,  b_0' = b_0 - (shift * scale) @ W_0   (standardization)

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        A fitted fastmlp estimator.

    Returns
    -------
    layers : list of (W, b)
        One pair per layer, ``W`` of shape (n_in, n_out) and ``b`` of shape (n_out,), in
        float64 (the fold is computed in double; round it once to the model's dtype).

    See Also
    --------
    to_onnx : The ONNX graph built from these layers.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPRegressor
    >>> from fastmlp.export import folded_layers
    >>> X = np.arange(40.0).reshape(20, 2)
    >>> model = MLPRegressor(hidden_layer_sizes=(3,), activation="identity", max_iter=2,
    ...                      random_state=0).fit(X, X.sum(axis=1))
    >>> (W0, b0), (W1, b1) = folded_layers(model)
    >>> bool(np.allclose((X @ W0 + b0) @ W1 + b1, model.predict(X)[:, None], rtol=1e-4))
    True
    """
    _fitted(model)
    batch_norm = model._fitted_spec["batch_norm"]
    n_layers = len(model.coefs_)
    layers = []
    for l in range(n_layers):
        W = np.asarray(model.coefs_[l], dtype=np.float64)
        b = np.asarray(model.intercepts_[l], dtype=np.float64)
        if batch_norm and l < n_layers - 1:
            # a batch-norm layer has no bias (prediction ignores intercepts_[l]); beta is its bias
            bn = {key: np.asarray(value, dtype=np.float64)
                  for key, value in model.batchnorm_[l].items()}
            s = bn["gamma"] / np.sqrt(bn["running_var"] + BATCHNORM_EPS)
            W, b = W * s, bn["beta"] - bn["running_mean"] * s
        layers.append((W, b))
    if model._x_shift is not None:
        # binary columns have shift 0 and scale 1, so they pass through unchanged
        shift = np.asarray(model._x_shift, dtype=np.float64)
        scale = np.asarray(model._x_scale, dtype=np.float64)
        W0, b0 = layers[0]
        layers[0] = (scale[:, None] * W0, b0 - (shift * scale) @ W0)
    return layers


def _label_values(model):
    """classes_ as an ONNX label tensor: ("int64", values) or ("string", values). Labels are
    integers, booleans, integral floats (a float label that is not an integer is a regression
    target to fastmlp) or strings."""
    classes = np.asarray(model.classes_)
    if classes.dtype.kind in "iubf":
        return "int64", classes.astype(np.int64)
    return "string", classes.astype(str)


def _multilabel(model):
    return model._label_binarizer.y_type_ == "multilabel-indicator"


# ---------------------------------------------------------------- skl2onnx: parser, shapes, graph

def _parse(scope, model, inputs, custom_parsers=None):
    """skl2onnx's parser: classifiers give "label" and "probabilities" (then ZipMap unless the
    option zipmap=False), regressors one "variable", as skl2onnx names scikit-learn's."""
    from skl2onnx._parse import _apply_zipmap
    from skl2onnx.common.data_types import Int64TensorType, guess_tensor_type

    operator = scope.declare_local_operator(_ALIASES[type(model)], model)
    operator.inputs = inputs
    if not _is_classifier(model):
        operator.outputs.append(
            scope.declare_local_variable("variable", guess_tensor_type(inputs[0].type)))
        return operator.outputs
    # the types are set by the shape calculator
    operator.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    operator.outputs.append(
        scope.declare_local_variable("probabilities", guess_tensor_type(inputs[0].type)))
    options = scope.get_options(model, dict(zipmap=True))
    if options["zipmap"] is False:
        return operator.outputs
    return _apply_zipmap(options["zipmap"], scope, model, inputs[0].type, operator.outputs)


def _calculate_shapes(operator):
    """Output types and shapes: labels (N,) ((N, n_labels) multilabel), probabilities
    (N, n_classes), regression values (N,) or (N, n_outputs) as predict gives them."""
    from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType, Int64TensorType,
                                            StringTensorType)
    from skl2onnx.common.utils import check_input_and_output_numbers

    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    check_input_and_output_numbers(operator, input_count_range=1,
                                   output_count_range=2 if _is_classifier(model) else 1)
    real = DoubleTensorType if model.coefs_[0].dtype == np.float64 else FloatTensorType
    if not _is_classifier(model):
        shape = [n] if model._y_1d else [n, model.n_outputs_]
        operator.outputs[0].type = real(shape)
        return
    if _multilabel(model):
        operator.outputs[0].type = Int64TensorType([n, len(model.classes_)])
    else:
        kind, _ = _label_values(model)
        operator.outputs[0].type = (Int64TensorType if kind == "int64" else StringTensorType)([n])
    operator.outputs[1].type = real([n, len(model.classes_)])


def _convert(scope, operator, container):
    """The graph: MatMul + Add (+ activation) per folded layer, then the outputs."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import guess_proto_type

    model = operator.raw_operator
    dtype = model.coefs_[0].dtype
    real = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT

    def name(hint):
        return scope.get_unique_variable_name(hint)

    def node(op_type, inputs, hint, output=None, **attrs):
        output = output or name(hint)
        container.add_node(op_type, inputs, output, name=scope.get_unique_operator_name(op_type),
                           **attrs)
        return output

    def constant(hint, values, proto=real):
        values = np.asarray(values)
        initializer = name(hint)
        container.add_initializer(initializer, proto, list(values.shape),
                                  [v.encode("utf-8") for v in values.ravel().tolist()]
                                  if proto == TensorProto.STRING else values.ravel())
        return initializer

    h = operator.inputs[0].full_name
    if guess_proto_type(operator.inputs[0].type) != real:
        h = node("Cast", [h], "cast_input", to=real)  # e.g. a float pipeline into a float64 model
    layers = folded_layers(model)
    hidden = _ACTIVATIONS[model._fitted_spec["activation"]]
    for l, (W, b) in enumerate(layers):
        a = node("MatMul", [h, constant("coefficient", W.astype(dtype))], "product")
        h = node("Add", [a, constant("intercept", b.astype(dtype))], "pre_activation")
        if l < len(layers) - 1 and hidden:
            h = node(hidden, [h], "activation")
    out_op = _OUT_ACTIVATIONS[model.out_activation_]
    if out_op == "Softmax":
        h = node(out_op, [h], "output", axis=1)
    elif out_op:
        h = node(out_op, [h], "output")

    if not _is_classifier(model):
        shape = [-1] if model._y_1d else [-1, model.n_outputs_]
        node("Reshape", [h, constant("shape", np.array(shape, np.int64), TensorProto.INT64)],
             "values", output=operator.outputs[0].full_name)
        return
    label, probabilities = operator.outputs[0].full_name, operator.outputs[1].full_name
    if _multilabel(model) or model.out_activation_ == "logistic":
        half = constant("half", np.array(0.5, dtype))
    if _multilabel(model):
        # predict: each label on when its probability is above 0.5 (LabelBinarizer's threshold)
        node("Identity", [h], "probabilities", output=probabilities)
        node("Cast", [node("Greater", [h, half], "on")], "label", output=label,
             to=TensorProto.INT64)
        return
    if model.out_activation_ == "logistic":
        # binary: one logistic unit p for classes_[1]; predict takes classes_[1] when p > 0.5,
        # predict_proba is [1 - p, p]
        one = constant("one", np.array(1.0, dtype))
        node("Concat", [node("Sub", [one, h], "negative"), h], "probabilities",
             output=probabilities, axis=1)
        index = node("Cast", [node("Greater", [h, half], "positive")], "index",
                     to=TensorProto.INT64)
        index = node("Reshape", [index, constant("flat", np.array([-1], np.int64),
                                                  TensorProto.INT64)], "index")
    else:
        node("Identity", [h], "probabilities", output=probabilities)
        # the first of equal maxima, as numpy's argmax in predict
        index = node("ArgMax", [h], "index", axis=1, keepdims=0)
    kind, values = _label_values(model)
    classes = constant("classes", values, TensorProto.INT64 if kind == "int64"
                       else TensorProto.STRING)
    node("Gather", [classes, index], "label", output=label, axis=0)


def register_skl2onnx():
    """Register fastmlp's estimators with skl2onnx, so that its converters handle them.

    After this call ``skl2onnx.to_onnx`` and ``skl2onnx.convert_sklearn`` convert
    :class:`~fastmlp.Network`, :class:`~fastmlp.MLPClassifier` and
    :class:`~fastmlp.MLPRegressor`, alone or inside a Pipeline or ColumnTransformer, with the
    standardization and batch norm folded into the weights (see :func:`folded_layers`).
    :func:`fastmlp.to_onnx` calls it for you; calling it again does nothing.

    Classifiers give the outputs "label" and "probabilities", as skl2onnx's classifiers do,
    followed by a ZipMap unless the option ``{"zipmap": False}`` is passed for the model
    (``options={id(model): {"zipmap": False}}``, or ``{type(model): ...}``); ``"columns"`` gives
    one output per class. Regressors give one output of shape (N,) or (N, n_outputs), as
    ``predict`` does.

    Raises
    ------
    ImportError
        When skl2onnx is not installed (``pip install fastmlp[onnx]``).

    See Also
    --------
    fastmlp.to_onnx : Convert one fastmlp estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skl2onnx import to_onnx
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.export import register_skl2onnx
    >>> register_skl2onnx()
    >>> X = np.random.RandomState(0).normal(size=(40, 3)).astype(np.float32)
    >>> pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=5, random_state=0))
    >>> pipe = pipe.fit(X, X[:, 0] > 0)
    >>> onx = to_onnx(pipe, X[:1], options={MLPClassifier: {"zipmap": False}})
    >>> [output.name for output in onx.graph.output]
    ['label', 'probabilities']
    """
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter

    for cls, alias in _ALIASES.items():
        # nocl (labels by index) is skl2onnx's option that its ZipMap reads; labels stay labels
        options = ({"zipmap": [True, False, "columns"], "nocl": [False]}
                   if cls is not MLPRegressor else None)
        update_registered_converter(cls, alias, _calculate_shapes, _convert, parser=_parse,
                                    options=options)
    _registered = True


def to_onnx(model, *, target_opset=None, zipmap=False):
    """Convert a fitted fastmlp estimator to an ONNX model.

    The graph computes what ``predict`` and ``predict_proba`` compute, in the model's precision:
    the input standardization and every batch norm are folded into the weights and dropout is
    left out (see :func:`fastmlp.export.folded_layers`). Its input "X" is a float tensor of
    shape ``(N, n_features_in_)`` (double for a float64 model). A classifier gives "label" (N,)
    (the class labels, int64 or string; a 0/1 int64 matrix (N, n_labels) for multilabel) and
    "probabilities" (N, n_classes), as ``predict_proba`` (two columns for binary); a regressor
    gives "variable", shaped as ``predict``'s result.

    Needs the ``onnx`` extra (``pip install fastmlp[onnx]``: onnx, onnxruntime, skl2onnx).
    The first call registers fastmlp's converter with skl2onnx
    (:func:`fastmlp.export.register_skl2onnx`), so a Pipeline holding a fastmlp estimator
    converts with ``skl2onnx.to_onnx`` afterwards as well.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        A fitted fastmlp estimator.
    target_opset : int, optional
        The highest ONNX opset the graph may use (skl2onnx writes the lowest one its nodes
        need, up to this); by default the newest one skl2onnx was tested with.
    zipmap : bool or "columns", default=False
        Classifiers only: False gives "probabilities" as a tensor; True adds skl2onnx's
        ZipMap, so the outputs are "output_label" and "output_probability" (a list of
        {label: probability} dicts); "columns" gives one probability output per class.

    Returns
    -------
    onnx.ModelProto
        The model; save it with ``onnx.save(model, path)``, run it with
        ``onnxruntime.InferenceSession(model.SerializeToString())``.

    Raises
    ------
    TypeError
        When model is not a fastmlp estimator.
    sklearn.exceptions.NotFittedError
        When model is not fitted.
    ValueError
        When zipmap is given for a regressor or is not one of its values.
    ImportError
        When skl2onnx is not installed.

    See Also
    --------
    fastmlp.export.register_skl2onnx : Convert Pipelines holding fastmlp estimators.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> import fastmlp
    >>> X = np.random.RandomState(0).normal(size=(60, 4)).astype(np.float32)
    >>> y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    >>> clf = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> session = ort.InferenceSession(fastmlp.to_onnx(clf).SerializeToString(),
    ...                                providers=["CPUExecutionProvider"])
    >>> label, probabilities = session.run(None, {"X": X})
    >>> bool((label == clf.predict(X)).all())
    True
    >>> bool(np.allclose(probabilities, clf.predict_proba(X), rtol=1e-5, atol=1e-6))
    True
    """
    _fitted(model)
    if zipmap not in (True, False, "columns"):
        raise ValueError(f"zipmap must be True, False or 'columns', got {zipmap!r}")
    classifier = _is_classifier(model)
    if zipmap is not False and not classifier:
        raise ValueError("zipmap applies to classifiers; this model is a regressor")
    register_skl2onnx()
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    real = DoubleTensorType if model.coefs_[0].dtype == np.float64 else FloatTensorType
    options = {id(model): {"zipmap": zipmap}} if classifier else None
    return convert_sklearn(model, initial_types=[("X", real([None, model.n_features_in_]))],
                           target_opset=target_opset, options=options)
