"""Greedy layer-wise pre-training of a Network's hidden layers (Bengio et al. 2007), and the
unlabeled rows it learns from.

``fit(X, y, X_unlabeled=...)`` of a network with ``pretrain="autoencoder"`` or ``"denoising"``:

1. the rows to pre-train on are every row of X (labeled or not) and of X_unlabeled;
2. hidden layer 1 is trained as a one-hidden-layer `Autoencoder` of those rows, hidden layer l
   as an autoencoder of the codes of layer l - 1 (computed by the C forward of the autoencoders
   already trained), each for ``pretrain_epochs`` epochs with the network's optimizer; a
   denoising autoencoder corrupts only the input of the layer it trains, never its target nor
   the codes handed to the layers above;
3. the network starts from the encoders' weights and biases (the output layer from Glorot's
   initialization) and the input standardization of layer 1's autoencoder, and is fine-tuned
   with the supervised loss on the labeled rows only.

A classifier's y marks an unlabeled row by -1, scikit-learn's semi-supervised convention
(sklearn.semi_supervised), when ``pretrain`` is set; those rows, and X_unlabeled, never reach
the supervised loss."""
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.validation import _num_samples, check_array

from .autoencoder import Autoencoder

# pretrain="denoising": masking noise on this fraction of each layer's inputs (Vincent et al.
# 2008 found 10-40% alike on MNIST-like data)
DENOISING_MASK_FRACTION = 0.25
UNLABELED = -1  # scikit-learn's mark of an unlabeled row in a classifier's y


class PretrainedLayers:
    """The weights of every hidden layer and the input standardization that pre-training
    found, written into the new model of a fit by `apply` (Network._train)."""

    def __init__(self, layers, shift, scale):
        self.layers, self.shift, self.scale = layers, shift, scale

    def apply(self, model):
        """Write the pre-trained layers into a new, initialized model (model.Model)."""
        for l, (W, b) in enumerate(self.layers):
            model.coefs[l][...] = W
            model.intercepts[l][...] = b
        if model.x_shift is not None and self.shift is not None:
            # the first layer's weights were learned on inputs standardized by these
            model.x_shift[...] = self.shift
            model.x_scale[...] = self.scale


def _labeled_rows(network, y):
    """Indices of y's labeled rows, or None when every row is labeled."""
    if network._task != "classification":
        return None
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iuf":
        return None
    unlabeled = y == UNLABELED
    if not unlabeled.any():
        return None
    if unlabeled.all():
        raise ValueError("every row of y is -1 (unlabeled): fine-tuning needs labeled rows")
    return np.flatnonzero(~unlabeled)


def _pretraining_rows(network, X, X_unlabeled):
    """Every row of X and of X_unlabeled, dense, in the model dtype: the first layer's
    autoencoder reads them in place (a copy only to convert, or to join X_unlabeled)."""
    dtype = network._model_dtype()
    X = check_array(X, accept_sparse=False, dtype=dtype, order="C", input_name="X")
    if X_unlabeled is None:
        return X
    X_unlabeled = check_array(X_unlabeled, accept_sparse=False, dtype=dtype, order="C",
                              input_name="X_unlabeled")
    if X_unlabeled.shape[1] != X.shape[1]:
        raise ValueError(f"X_unlabeled has {X_unlabeled.shape[1]} features; X has "
                         f"{X.shape[1]}")
    return np.concatenate([X, X_unlabeled])


def pretrain_layers(network, X):
    """Train the hidden layers of `network` greedily, each as an autoencoder of the codes of
    the one below, on the rows X. Returns (PretrainedLayers, the autoencoders)."""
    rng = check_random_state(network.random_state)
    corruption = "mask" if network.pretrain == "denoising" else None
    hidden = network._hidden_sizes()
    codes, layers, autoencoders = X, [], []
    for l, units in enumerate(hidden):
        autoencoder = Autoencoder(
            hidden_layer_sizes=(units,), activation=network.activation, output="auto",
            corruption=corruption, corruption_level=DENOISING_MASK_FRACTION,
            solver=network.solver, learning_rate_init=network.learning_rate_init,
            learning_rate=network.learning_rate,
            power_t=network.power_t, momentum=network.momentum,
            nesterovs_momentum=network.nesterovs_momentum, beta_1=network.beta_1,
            beta_2=network.beta_2, rho=network.rho, epsilon=network.epsilon,
            alpha=network.alpha, batch_size=network.batch_size,
            max_iter=network.pretrain_epochs, shuffle=network.shuffle,
            random_state=rng.randint(2**31 - 1), tol=0.0, n_iter_no_change=network.pretrain_epochs,
            # the layers above read the codes as they are: only the input is standardized
            normalize=network.normalize if l == 0 else None, dtype=network.dtype,
            n_threads=network.n_threads, verbose=network.verbose)
        with warnings.catch_warnings():
            # a fixed number of epochs, by design, not a failure to converge
            warnings.simplefilter("ignore", ConvergenceWarning)
            autoencoder.fit(codes)
        layers.append((autoencoder.coefs_[0].copy(), autoencoder.intercepts_[0].copy()))
        autoencoders.append(autoencoder)
        if l + 1 < len(hidden):
            codes = autoencoder.transform(codes)  # clean: no corruption above the input
    first = autoencoders[0]
    shift = None if first._x_shift is None else first._x_shift.copy()
    scale = None if first._x_scale is None else first._x_scale.copy()
    return PretrainedLayers(layers, shift, scale), autoencoders


def fit_pretrained(network, X, y, sample_weight, X_unlabeled, validation):
    """Network.fit with pre-training and unlabeled rows (see the module's docstring)."""
    if network.pretrain is None:
        raise ValueError("X_unlabeled is only used by pre-training: set pretrain="
                         "'autoencoder' or 'denoising', or leave X_unlabeled out")
    if network.solver == "lbfgs":
        raise ValueError("pretrain trains each layer's autoencoder by mini-batches: use a "
                         "stochastic solver ('adam', 'sgd', 'adagrad' or 'rmsprop'), not "
                         "'lbfgs'")
    if _num_samples(X) != _num_samples(y):
        raise ValueError(f"X has {_num_samples(X)} rows but y has {_num_samples(y)}")
    labeled = _labeled_rows(network, y)
    fresh = not (network.warm_start and "_model" in network.__dict__
                 and network._same_architecture())
    pretrained, autoencoders = None, []
    if fresh:
        pretrained, autoencoders = pretrain_layers(network,
                                                   _pretraining_rows(network, X, X_unlabeled))
    if labeled is not None:
        X, y = _safe_indexing(X, labeled), _safe_indexing(y, labeled)
        if sample_weight is not None:
            sample_weight = _safe_indexing(np.asarray(sample_weight), labeled)
    network._pretrained = pretrained
    try:
        network._fit(X, y, sample_weight, incremental=False, validation=validation)
    finally:
        network.__dict__.pop("_pretrained", None)
    if fresh:
        network.pretrain_loss_ = [autoencoder.loss_ for autoencoder in autoencoders]
    return network
