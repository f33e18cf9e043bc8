"""scikit-learn's MLPClassifier, BLAS capped at the thread count with threadpoolctl."""
import warnings


class Trainer:
    def __init__(self, hidden, batch, X, y, threads):
        import sklearn
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits
        self.version = sklearn.__version__
        self.limits = threadpool_limits(threads)  # held for the life of the worker
        self.clf = MLPClassifier(hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.01,
                                 momentum=0.9, nesterovs_momentum=False, alpha=0.0,
                                 batch_size=batch, max_iter=1, tol=0.0, n_iter_no_change=10**6,
                                 shuffle=True, early_stopping=False, random_state=0,
                                 warm_start=True)
        self.X, self.y = X, y
        self.samples_per_epoch = X.shape[0]

    def run(self, k):
        self.clf.set_params(max_iter=k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.fit(self.X, self.y)

    def extra(self):
        return {"final_loss": float(self.clf.loss_)}


def trainer(hidden, batch, X, y, threads):
    return Trainer(hidden, batch, X, y, threads)


def version():
    import sklearn
    return sklearn.__version__
