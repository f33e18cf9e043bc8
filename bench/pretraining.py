"""Greedy layer-wise pre-training with few labels: test accuracy with and without it, over seeds.

MNIST-shaped data without a download: scikit-learn's digits (8 x 8, 1797 images) upsampled to
28 x 28 = 784 pixels in [0, 1] (bilinear), the images split into a training pool and a test set
first, then each augmented by small random shifts and rotations (so no test image is a copy of
a training one). From the pool, `--labeled` rows keep their label and the rest are marked -1
(unlabeled, scikit-learn's convention). The same network is fitted on the labeled rows alone
(pretrain=None) and with pre-training on every row (pretrain="autoencoder", "denoising"); for
each seed (which labels are kept, and the network's random_state) it records the test accuracy
and the fit's wall-clock seconds, and prints the mean and standard deviation over the seeds.

    python bench/pretraining.py                        # 5 seeds, 500 labels: a few minutes
    python bench/pretraining.py --seeds 2 --quick      # smoke run: the numbers mean nothing
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from fastmlp import MLPClassifier  # noqa: E402


def mnist_shaped(copies, seed=0):
    """(X_pool, y_pool, X_test, y_test): digits at 28 x 28 in [0, 1], float32, each image
    `copies` times, randomly shifted (up to 2 pixels) and rotated (up to 10 degrees)."""
    digits = load_digits()
    images = np.stack([ndimage.zoom(image / 16.0, 28 / 8, order=1) for image in digits.images])
    pool, test, y_pool, y_test = train_test_split(images, digits.target, test_size=0.2,
                                                  random_state=0, stratify=digits.target)
    rng = np.random.RandomState(seed)

    def augment(images, labels):
        out = []
        for _ in range(copies):
            for image in images:
                moved = ndimage.rotate(image, rng.uniform(-10, 10), reshape=False, order=1)
                moved = ndimage.shift(moved, rng.uniform(-2, 2, size=2), order=1)
                out.append(np.clip(moved, 0, 1))
        return (np.asarray(out, dtype=np.float32).reshape(len(out), -1),
                np.tile(labels, copies))

    return (*augment(pool, y_pool), *augment(test, y_test))


def run(X, y, X_test, y_test, labeled, seed, pretrain, args):
    rng = np.random.RandomState(seed)
    keep = rng.choice(len(y), labeled, replace=False)
    clf = MLPClassifier(hidden_layer_sizes=tuple(args.hidden), activation=args.activation,
                        early_stopping=args.early_stopping, pretrain=pretrain,
                        pretrain_epochs=args.pretrain_epochs, max_iter=args.max_iter,
                        learning_rate_init=1e-3, alpha=1e-4, random_state=seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if pretrain is None:
            clf.fit(X[keep], y[keep])  # the labeled rows are all it can use
        else:
            y_partial = np.full_like(y, -1)
            y_partial[keep] = y[keep]
            clf.fit(X, y_partial)
    seconds = time.perf_counter() - started
    return clf.score(X_test, y_test), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labeled", type=int, default=500)
    parser.add_argument("--copies", type=int, default=5, help="augmented copies of each image")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--activation", default="relu",
                        choices=["relu", "tanh", "sigmoid", "identity"])
    parser.add_argument("--early-stopping", action="store_true",
                        help="fine-tune with early stopping on 10%% of the labeled rows")
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="1 copy, 2 epochs: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.copies, args.pretrain_epochs, args.max_iter = 1, 2, 5
    X, y, X_test, y_test = mnist_shaped(args.copies)
    print(f"pool {X.shape[0]} x {X.shape[1]} ({args.labeled} labeled), test {X_test.shape[0]}; "
          f"784-{'-'.join(map(str, args.hidden))}-10 {args.activation}, "
          f"early_stopping={args.early_stopping}, pretrain_epochs={args.pretrain_epochs}, "
          f"{args.seeds} seeds")
    print("| pretrain | test accuracy (mean ± std) | per seed | fit seconds (mean ± std) |")
    print("|---|---|---|---|")
    for pretrain in (None, "autoencoder", "denoising"):
        results = np.array([run(X, y, X_test, y_test, args.labeled, seed, pretrain, args)
                            for seed in range(args.seeds)])
        accuracy, seconds = results[:, 0], results[:, 1]
        print(f"| {pretrain} | {accuracy.mean():.4f} ± {accuracy.std(ddof=1):.4f} | "
              f"{' '.join(f'{a:.3f}' for a in accuracy)} | "
              f"{seconds.mean():.1f} ± {seconds.std(ddof=1):.1f} |", flush=True)


if __name__ == "__main__":
    main()
