"""fit on a numpy.memmap twice the size of the memory the process may use.

    python bench/out_of_core.py                           # 2,700,000 x 200 float32 (2.0 GiB)
    python bench/out_of_core.py --rows 500000 --epochs 2  # a quick run (0.4 GiB)
    python bench/out_of_core.py --json results.json       # also write the figures as JSON

Writes a float32 X (standard normal rows, labels from a fixed linear rule with 10% of them
flipped) as a .npy file under --dir in chunks, syncs it and drops it from the page cache, then
trains each case in a child process inside a cgroup v1 memory cgroup whose limit is half the
file's size (--limit-fraction; page cache counts against a memory cgroup, so the child can hold
at most half the file, in pages or in arrays, at any time):

- memmap, block shuffling: MLPClassifier.fit on np.load(path, mmap_mode="r"), which visits the
  file in shuffled blocks of consecutive rows (fastmlp/row_order.py);
- memmap, uniform permutation: the same with every epoch a uniform permutation of all rows (the
  order arrays in memory get), forced for the comparison, timed over its first --probe-seconds;
- in memory: the first --in-memory-rows rows copied into an ndarray, fit as usual;
- dask-ml Incremental: Incremental(MLPClassifier, shuffle_blocks=True).partial_fit once per
  epoch on da.from_array(OnDisk(memmap), chunks=(block rows, all columns), name=False),
  synchronous scheduler; OnDisk hides the memmap's `copy`, which dask 2026.8's from_array
  calls on any array it is given (case dask-copy: from_array on the memmap itself, copied
  whole), and name=False spares it dask's tokenizing, which pickles an unknown object whole.

For each case: samples/s per epoch (history_'s, the C training passes; and the wall time of the
whole fit, which adds validation's finiteness check and normalize's two column passes over X),
the training loss per epoch, the cgroup's memory.max_usage_in_bytes, the largest anonymous
memory (memory.stat's rss, sampled) and whether the kernel's OOM killer acted. Needs root and a
writable /sys/fs/cgroup/memory (cgroup v1); without them the cases run without a limit, which
the report says. The files are deleted at the end.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CGROUP_ROOT = "/sys/fs/cgroup/memory"


def write_data(path, n, d, seed=0, chunk_rows=100_000):
    """X (n, d) float32 as a .npy file written chunk by chunk (no array of X's size), y (n,)
    int64 beside it; synced and dropped from the page cache so that the child reads the disk
    and its cgroup is charged for every page it touches."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d).astype(np.float32)
    y = np.empty(n, dtype=np.int64)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)})
        for start in range(0, n, chunk_rows):
            rows = min(chunk_rows, n - start)
            X = rng.standard_normal((rows, d), dtype=np.float32)
            label = (X @ w > 0)
            flip = rng.random(rows) < 0.1
            y[start:start + rows] = label ^ flip
            f.write(X.tobytes())
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    np.save(path.replace(".npy", "_y.npy"), y)


def drop_cache(path):
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


class MemoryCgroup:
    """A cgroup v1 memory cgroup with a limit, for one child at a time; removed on close."""

    def __init__(self, limit):
        self.path = os.path.join(CGROUP_ROOT, f"fastmlp_out_of_core_{os.getpid()}")
        os.mkdir(self.path)
        self.write("memory.limit_in_bytes", limit)
        self.limit = int(self.read("memory.limit_in_bytes"))

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def stat(self, key):
        for line in self.read("memory.stat").splitlines():
            name, value = line.split()
            if name == key:
                return int(value)
        return 0

    def reset(self):
        self.write("memory.max_usage_in_bytes", 0)
        self.write("memory.force_empty", 0)  # the previous child's page cache, uncharged

    def join(self):
        """Called in the child before exec: the whole child is charged from its first page."""
        self.write("cgroup.procs", os.getpid())

    def oom_kills(self):
        for line in self.read("memory.oom_control").splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def close(self):
        os.rmdir(self.path)


def run_child(spec, cgroup):
    """Run one case in a child process (inside the cgroup); its JSON result and the memory
    figures sampled while it ran."""
    if cgroup is not None:
        cgroup.reset()
        oom_before = cgroup.oom_kills()
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(HERE), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                             stdout=subprocess.PIPE, env=env,
                             preexec_fn=cgroup.join if cgroup is not None else None)
    largest_rss = 0
    while child.poll() is None:
        if cgroup is not None:
            largest_rss = max(largest_rss, cgroup.stat("rss"))
        time.sleep(0.2)
    out = child.stdout.read().decode()
    result = json.loads(out.strip().splitlines()[-1]) if child.returncode == 0 else \
        {"case": spec["case"], "failed": f"exit status {child.returncode}"}
    if cgroup is not None:
        result["max_usage_bytes"] = int(cgroup.read("memory.max_usage_in_bytes"))
        result["largest_rss_bytes"] = largest_rss
        result["oom_kills"] = cgroup.oom_kills() - oom_before
    return result


class ProbeDone(Exception):
    pass


class OnDisk:
    """A memmap as dask's from_array reads an h5py dataset: block by block, never whole."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        return self.array[key]


def child(spec):
    import warnings

    import numpy as np

    from fastmlp import MLPClassifier, row_order

    X = np.load(spec["path"], mmap_mode="r")
    y = np.load(spec["path"].replace(".npy", "_y.npy"), mmap_mode="r")
    if spec["case"] == "in memory":
        n = spec["in_memory_rows"]
        X, y = np.array(X[:n]), np.array(y[:n])
    if spec["block_mb"]:
        row_order.BLOCK_BYTES = int(spec["block_mb"] * (1 << 20))
    if spec["case"] == "memmap, uniform permutation":
        row_order.shuffling_for = lambda X, shuffle: shuffle  # arrays in memory's order
    model = MLPClassifier(hidden_layer_sizes=tuple(spec["hidden"]), batch_size=256,
                          max_iter=spec["epochs"], tol=0.0, n_iter_no_change=spec["epochs"],
                          random_state=0)
    result = {"case": spec["case"], "rows": int(X.shape[0]), "features": int(X.shape[1])}
    started = time.perf_counter()
    if spec["case"].startswith("dask-ml Incremental"):
        import dask
        import dask.array as da
        from dask_ml.wrappers import Incremental

        block_rows = row_order.BLOCK_BYTES // (X.shape[1] * X.itemsize)
        # dask 2026.8's from_array copies an ndarray (a memmap too) whole into memory first
        # (x.copy()); a wrapper it reads as it reads an h5py dataset keeps X on disk, and
        # name=False spares the wrapper dask's tokenizing, which would pickle it (X whole)
        if spec["case"] == "dask-ml Incremental, from_array(memmap)":
            X_dask = da.from_array(X, chunks=(block_rows, X.shape[1]))
            y_dask = da.from_array(y, chunks=block_rows)
        else:
            X_dask = da.from_array(OnDisk(X), chunks=(block_rows, X.shape[1]), name=False)
            y_dask = da.from_array(OnDisk(y), chunks=block_rows, name=False)
        incremental = Incremental(model, shuffle_blocks=True, random_state=0)
        epochs = []
        with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(spec["epochs"]):
                began = time.perf_counter()
                incremental.partial_fit(X_dask, y_dask, classes=[0, 1])
                history = incremental.estimator_.history_
                blocks = history[-X_dask.numblocks[0]:]
                epochs.append({"samples_per_s": X.shape[0] / (time.perf_counter() - began),
                               "train_loss": float(np.average(
                                   [r["train_loss"] for r in blocks],
                                   weights=[c for c in X_dask.chunks[0]]))})
        result["epochs"] = epochs
    elif spec["case"] == "memmap, uniform permutation":
        done = []

        class Probe:
            def on_stretch_end(self, estimator, rows_done, n_rows):
                done.append((rows_done, time.perf_counter()))
                if time.perf_counter() - done[0][1] > spec["probe_seconds"]:
                    raise ProbeDone

            def on_train_begin(self, estimator):
                done.append((0, time.perf_counter()))

        model.set_params(max_iter=1, callbacks=[Probe()])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, y)
        except ProbeDone:
            pass
        (rows0, t0), (rows1, t1) = done[0], done[-1]
        result["epochs"] = [{"samples_per_s": (rows1 - rows0) / (t1 - t0), "train_loss": None,
                             "rows_timed": rows1 - rows0}]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
        result["epochs"] = [{"samples_per_s": r["samples_per_s"], "train_loss": r["train_loss"],
                             "seconds": r["seconds"]} for r in model.history_]
        result["fit_seconds"] = time.perf_counter() - started
        result["setup_seconds"] = result["fit_seconds"] - sum(r["seconds"]
                                                              for r in model.history_)
    result["wall_seconds"] = time.perf_counter() - started
    print(json.dumps(result))


def report(results, file_bytes, limit, rows, features):
    gib = 1 << 30
    print(f"X: {rows:,} x {features} float32, {file_bytes / gib:.2f} GiB on disk; "
          + (f"cgroup memory limit {limit / gib:.2f} GiB" if limit else
             "NO memory limit (cgroup v1 memory controller not available)"))
    print()
    print("| case | rows | samples/s per epoch | train loss per epoch | cgroup max usage | "
          "largest rss | OOM kills |")
    print("|---|---:|---|---|---:|---:|---:|")
    for r in results:
        if "failed" in r:
            print(f"| {r.get('case', '?')} | | {r['failed']} | | | | |")
            continue
        speeds = ", ".join(f"{e['samples_per_s']:,.0f}" for e in r["epochs"])
        losses = ", ".join("-" if e["train_loss"] is None else f"{e['train_loss']:.4f}"
                           for e in r["epochs"])
        memory = (f"{r['max_usage_bytes'] / gib:.2f} GiB", f"{r['largest_rss_bytes'] / gib:.2f} "
                  "GiB", str(r["oom_kills"])) if "max_usage_bytes" in r else ("-", "-", "-")
        print(f"| {r['case']} | {r['rows']:,} | {speeds} | {losses} | " + " | ".join(memory)
              + " |")
    for r in results:
        if "setup_seconds" in r:
            print(f"{r['case']}: fit {r['fit_seconds']:.1f} s, of which "
                  f"{r['setup_seconds']:.1f} s outside the epochs (validation, normalize)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--in-memory-rows", type=int, default=300_000)
    parser.add_argument("--limit-fraction", type=float, default=0.5,
                        help="the cgroup's memory limit as a share of X's file (0.5)")
    parser.add_argument("--limit-mib", type=float, default=0,
                        help="the cgroup's memory limit in MiB, instead of --limit-fraction "
                             "(for small runs: Python with numpy and scikit-learn imported "
                             "holds ~150 MiB)")
    parser.add_argument("--block-mb", type=float, default=0,
                        help="block size for block shuffling, MiB (0: fastmlp's own, 16)")
    parser.add_argument("--probe-seconds", type=float, default=30,
                        help="how long the uniform permutation on the memmap is timed")
    parser.add_argument("--cases", default="block,uniform,memory,dask",
                        help="comma-separated: block, uniform, memory, dask, dask-copy "
                             "(from_array on the memmap itself, which dask copies whole)")
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))

    path = os.path.join(args.dir, f"fastmlp_out_of_core_{os.getpid()}.npy")
    names = {"block": "memmap, block shuffling", "uniform": "memmap, uniform permutation",
             "memory": "in memory", "dask": "dask-ml Incremental",
             "dask-copy": "dask-ml Incremental, from_array(memmap)"}
    cgroup = None
    try:
        began = time.perf_counter()
        write_data(path, args.rows, args.features)
        file_bytes = os.path.getsize(path)
        print(f"wrote {path} ({file_bytes / (1 << 30):.2f} GiB) in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        limit = int(args.limit_mib * (1 << 20)) if args.limit_mib else \
            int(file_bytes * args.limit_fraction)
        try:
            cgroup = MemoryCgroup(limit)
        except OSError as error:
            print(f"no memory cgroup ({error}): the cases run WITHOUT a memory limit; run as "
                  f"root on a machine with the cgroup v1 memory controller at {CGROUP_ROOT}",
                  file=sys.stderr)
        results = []
        for case in args.cases.split(","):
            drop_cache(path)
            spec = {"case": names[case], "path": path, "epochs": args.epochs,
                    "hidden": args.hidden, "in_memory_rows": args.in_memory_rows,
                    "block_mb": args.block_mb, "probe_seconds": args.probe_seconds}
            results.append(run_child(spec, cgroup))
            print(f"{names[case]}: {results[-1]}", file=sys.stderr)
        report(results, file_bytes, cgroup.limit if cgroup else None, args.rows, args.features)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "file_bytes": file_bytes,
                           "limit": cgroup.limit if cgroup else None, "results": results}, f,
                          indent=1)
    finally:
        if cgroup is not None:
            cgroup.close()
        for name in (path, path.replace(".npy", "_y.npy")):
            if os.path.exists(name):
                os.remove(name)


if __name__ == "__main__":
    sys.exit(main())
