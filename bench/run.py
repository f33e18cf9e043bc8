"""Benchmark driver: `python bench/run.py [--quick] [--n 20000] [--rounds 3] [--only train,predict]`.

Every measurement runs in its own worker process (bench/worker.py), contenders alternate (the
order rotates each round, so a slow neighbour or a load spike from elsewhere does not always
hit the same contender), and every figure reported is the median over the rounds. Prints
markdown tables; writes bench/results/latest.json (all raw rounds) and bench/results/latest.md.

fastmlp is imported from this checkout (its src/ goes on PYTHONPATH for the workers: build it
in place with `python setup.py build_ext --inplace`) or from wherever `pip install .` put it.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "contenders"))

import common  # noqa: E402
from contenders import CONTENDERS_PREDICT, CONTENDERS_TRAIN  # noqa: E402

GROUPS = ["peak", "gemm", "train", "predict", "memory", "scaling"]
LABELS = {"fastmlp": "fastmlp", "fastmlp_blas": "fastmlp, BLAS instead of its tiles",
          "torch": "PyTorch eager", "torch_compile": "PyTorch torch.compile",
          "jax": "JAX jit(scan epoch)", "sklearn": "scikit-learn MLPClassifier",
          "numpy": "numpy loop", "onnxruntime": "onnxruntime"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: small n, one round, short timings (numbers are not meaningful)")
    p.add_argument("--n", type=int, default=None, help="training rows (default 20000; quick 2000)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    p.add_argument("--threads", type=int, default=2, help="threads for every contender (default 2)")
    p.add_argument("--min-seconds", type=float, default=None,
                   help="timed stretch per training measurement, in whole epochs (default 2; quick 0.2)")
    p.add_argument("--rows", type=int, default=None, help="rows for bulk prediction (default 20000)")
    p.add_argument("--calls", type=int, default=None, help="one-row calls timed (default 2000)")
    p.add_argument("--memory-n", type=int, default=None, help="rows of X in the memory test (default 60000)")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma list of groups out of {GROUPS}")
    p.add_argument("--configs", default=",".join(common.TRAIN_CONFIGS), help="comma list of configs")
    p.add_argument("--contenders", default=None, help="comma list: run only these contenders")
    p.add_argument("--wait-idle", type=float, default=15,
                   help="seconds to wait, before each worker, for other processes to leave the "
                        "cores (default 15; 0 to not wait)")
    p.add_argument("--wait-near", type=float, default=60,
                   help="seconds to wait, before each worker, for the first two cores to share a "
                        "cache (bench/placement.c: a virtual machine's vCPUs move between physical "
                        "cores; default 60; 0 to not wait)")
    p.add_argument("--timeout", type=float, default=900, help="seconds before a worker is abandoned")
    p.add_argument("--readme", action="store_true",
                   help="also put the tables into bench/README.md, between its 'latest results' markers")
    p.add_argument("--render", metavar="JSON", default=None,
                   help="measure nothing: print (and with --readme, put in the README) the tables "
                        "of an earlier run's results JSON")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for latest.json/.md")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = dict(n=2000 if quick else 20000, rounds=1 if quick else 3,
                    min_seconds=0.2 if quick else 2.0, rows=2000 if quick else 20000,
                    calls=200 if quick else 2000, memory_n=6000 if quick else 60000)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.only = [g for g in args.only.split(",") if g]
    args.configs = [c for c in args.configs.split(",") if c]
    unknown = [g for g in args.only if g not in GROUPS] + \
              [c for c in args.configs if c not in common.TRAIN_CONFIGS]
    if unknown:
        p.error(f"unknown group or config: {unknown}")
    args.contenders = None if args.contenders is None else set(args.contenders.split(","))
    return args


class Runner:
    def __init__(self, args):
        self.args = args
        self.records = []  # every worker's spec and result, in the order run
        self.placement = common.Placement(args.out)

    def wait_near(self):
        """Wait (up to --wait-near seconds) until the first two cores share a cache, so that every
        contender is measured on the same kind of placement (bench/placement.c says why).
        Returns the round trip in ns when the worker starts."""
        started = time.perf_counter()
        ns = self.placement.round_trip_ns()
        while ns is not None and ns >= common.NEAR_NS and time.perf_counter() - started < self.args.wait_near:
            time.sleep(1.0)
            ns = self.placement.round_trip_ns()
        return ns

    def wait_idle(self):
        """Wait (up to --wait-idle seconds) until other processes use under a quarter of the
        machine: on 2 cores a single foreign busy process stalls every barrier of a 2-thread
        contender, which can slow it 10-30 times. Returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < self.args.wait_idle:
            before = cpu_busy_seconds()
            time.sleep(0.5)
            if (cpu_busy_seconds() - before) / (0.5 * CORES) < 0.25:
                break
        return time.perf_counter() - started

    def worker(self, spec, threads):
        waited = self.wait_idle()
        round_trip_before = self.wait_near() if threads > 1 else None
        env = common.thread_env(threads)
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "src")]
                                            + [p for p in [env.get("PYTHONPATH")] if p])
        spec = dict(spec, threads=spec.get("threads", threads))
        started = time.perf_counter()
        busy = cpu_busy_seconds()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            done = subprocess.run([sys.executable, os.path.join(HERE, "worker.py"), json.dumps(spec)],
                                  env=env, capture_output=True, text=True, timeout=self.args.timeout,
                                  cwd=ROOT)
            lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            if lines:
                result = json.loads(lines[-1][len("RESULT "):])
            else:
                result = {"error": (done.stderr or done.stdout).strip()[-2000:]}
        except subprocess.TimeoutExpired:
            result = {"error": f"timed out after {self.args.timeout} s"}
        result["wall_seconds"] = time.perf_counter() - started
        # share of the machine that other processes used while the worker ran: the noise gauge
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        result["foreign_cpu_share"] = max(0.0, (cpu_busy_seconds() - busy - own)
                                          / (result["wall_seconds"] * CORES))
        result["waited_idle_seconds"] = waited
        if threads > 1:  # where the cores were when the worker started and when it ended
            result["core_round_trip_ns"] = [round_trip_before, self.placement.round_trip_ns()]
        self.records.append({"spec": spec, "result": result})
        status = result.get("error", result.get("skipped", "ok"))
        print(f"  {spec['task']:8s} {spec.get('contender', ''):22s} {spec.get('config', ''):17s} "
              f"n={spec.get('n', spec.get('rows', ''))!s:6s} t={spec['threads']} "
              f"{result['wall_seconds']:6.1f} s  other {100 * result['foreign_cpu_share']:3.0f}%  "
              f"cores {'/'.join(fmt(x, '.0f') for x in result.get('core_round_trip_ns', []))} ns  "
              f"{status.splitlines()[-1][:90] if status != 'ok' else 'ok'}",
              file=sys.stderr, flush=True)
        return result

    def peak(self, threads, r):
        """The FMA peak of `threads` threads (common.benchmark.fma_peak: a C probe of
        independent FMA chains built for this CPU's widest vectors), measured in the same
        conditions as the workers: after waiting for idle cores and a near placement."""
        waited = self.wait_idle()
        round_trip = self.wait_near() if threads > 1 else None
        started = time.perf_counter()
        result = common.benchmark.fma_peak(threads)
        result.update(wall_seconds=time.perf_counter() - started, waited_idle_seconds=waited)
        if threads > 1:
            result["core_round_trip_ns"] = [round_trip, self.placement.round_trip_ns()]
        self.records.append({"spec": {"task": "peak", "round": r, "threads": threads},
                             "result": result})
        print(f"  peak     {result['isa']:22s} {'':17s} {'':8s} t={threads} "
              f"{result['wall_seconds']:6.1f} s  float32 {result['f32_all']:.1f} GFLOP/s "
              f"({result['f32_1']:.1f} on 1 thread)", file=sys.stderr, flush=True)
        return result

    def wanted(self, name):
        return self.args.contenders is None or name in self.args.contenders


CORES = os.cpu_count() or 1  # /proc/stat counts every core of the machine


def cpu_busy_seconds():
    """CPU seconds all processes have spent busy since boot, summed over the cores (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:8]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def rotate(items, r):
    r %= max(len(items), 1)
    return items[r:] + items[:r]


def run_all(args):
    runner = Runner(args)
    t = args.threads
    onnx_dir = os.path.join(args.out, "onnx.tmp")
    os.makedirs(onnx_dir, exist_ok=True)
    if "predict" in args.only and runner.wanted("onnxruntime"):
        runner.worker({"task": "export", "configs": args.configs, "dir": onnx_dir}, 1)
    train = [c for c in CONTENDERS_TRAIN if runner.wanted(c)]
    predict = [c for c in CONTENDERS_PREDICT if runner.wanted(c)]
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        if "peak" in args.only:
            runner.peak(t, r)
        if "gemm" in args.only:
            runner.worker({"task": "gemm", "round": r}, t)
        if "train" in args.only:
            for config in args.configs:
                for c in rotate(train, r):
                    runner.worker({"task": "train", "contender": c, "config": config, "n": args.n,
                                   "min_seconds": args.min_seconds, "round": r}, t)
        if "predict" in args.only:
            for config in args.configs:
                for c in rotate(predict, r):
                    runner.worker({"task": "predict", "contender": c, "config": config,
                                   "rows": args.rows, "calls": args.calls, "dir": onnx_dir,
                                   "min_seconds": min(args.min_seconds, 1.0), "round": r}, t)
        if "scaling" in args.only and runner.wanted("fastmlp"):
            # epoch time linear in n: the middle config at n and 4n
            for n in rotate([args.n, 4 * args.n], r):
                runner.worker({"task": "train", "contender": "fastmlp", "config": "784-256-256-10",
                               "n": n, "min_seconds": args.min_seconds, "round": r,
                               "group": "scaling-n"}, t)
            # threads: 1 against `threads` on the large config
            for threads in rotate([1, t], r):
                runner.worker({"task": "train", "contender": "fastmlp", "config": "784-1024-1024-10",
                               "n": args.n, "min_seconds": args.min_seconds, "round": r,
                               "threads": threads, "group": "scaling-threads"}, threads)
    if "memory" in args.only:
        # peak RSS hardly varies with load: one round; the default config, one epoch
        for c in ["fastmlp", "fastmlp:normalize=auto", "numpy", "sklearn"]:
            if runner.wanted(c.split(":")[0]):
                runner.worker({"task": "memory", "contender": c, "config": "784-100-10",
                               "n": args.memory_n}, t)
    return runner.records


# ------------------------------------------------------------------------------- summary

def median_of(records, key, **match):
    values = [rec["result"][key] for rec in records
              if all(rec["spec"].get(k) == v for k, v in match.items()) and key in rec["result"]]
    return statistics.median(values) if values else None


def first_error(records, **match):
    for rec in records:
        if all(rec["spec"].get(k) == v for k, v in match.items()):
            res = rec["result"]
            if "error" in res or "skipped" in res:
                return (res.get("error") or res.get("skipped")).splitlines()[-1][:80]
    return "no result"


def rate_or_error(rows, records, key, contender, config):
    """The contender's median `key` on config; None when it has none, and then, if it was run,
    a row saying why goes into rows."""
    rate = median_of(records, key, contender=contender, config=config)
    if rate is None and any(r["spec"].get("contender") == contender for r in records):
        rows.append({"config": config, "contender": contender,
                     "error": first_error(records, contender=contender, config=config)})
    return rate


def summarize(records, args):
    s = {"gemm_gflops": median_of(records, "gflops", task="gemm"), "train": [], "predict": [],
         "memory": [], "scaling": {}}
    peaks = [r["result"] for r in records if r["spec"]["task"] == "peak"]
    if peaks:
        s["fma_peak"] = {key: median_of(records, key, task="peak")
                         for key in ("f32_1", "f32_all", "f64_1", "f64_all")}
        s["fma_peak"].update(isa=peaks[0]["isa"], measured=peaks[0]["measured"],
                             note=peaks[0]["note"], threads=peaks[0]["threads"],
                             rounds=len(peaks))
    peak = s.get("fma_peak", {}).get("f32_all")
    ceiling = s["gemm_gflops"]
    train_records = [r for r in records if r["spec"]["task"] == "train" and "group" not in r["spec"]]
    for config in args.configs:
        hidden, batch = common.TRAIN_CONFIGS[config]
        flops = common.train_flops_per_sample(hidden)
        rows = []
        for c in CONTENDERS_TRAIN:
            rate = rate_or_error(rows, train_records, "samples_per_second", c, config)
            if rate is None:
                continue
            best = max(r["result"]["samples_per_second"] for r in train_records
                       if r["spec"]["contender"] == c and r["spec"]["config"] == config
                       and "samples_per_second" in r["result"])
            row = {"config": config, "batch": batch, "contender": c, "samples_per_second": rate,
                   "best_round_samples_per_second": best,
                   "epoch_seconds": median_of(train_records, "epoch_seconds", contender=c, config=config),
                   "gflops": rate * flops / 1e9}
            if peak:
                row["pct_of_peak"] = 100 * row["gflops"] / peak
            if ceiling:
                row["pct_of_ceiling"] = 100 * row["gflops"] / ceiling
            if c == "fastmlp":
                row["c_epoch_seconds"] = median_of(train_records, "c_epoch_seconds", contender=c,
                                                   config=config)
            rows.append(row)
        peers = [r for r in rows if r["contender"] != "fastmlp" and "samples_per_second" in r]
        best = max(peers, key=lambda r: r["samples_per_second"], default=None)
        for r in rows:
            if best and "samples_per_second" in r:
                r["x_best_peer"] = r["samples_per_second"] / best["samples_per_second"]
                r["best_peer"] = best["contender"]
        s["train"] += rows

    predict_records = [r for r in records if r["spec"]["task"] == "predict"]
    for config in args.configs:
        hidden, _ = common.TRAIN_CONFIGS[config]
        rows = []
        for c in CONTENDERS_PREDICT:
            rate = rate_or_error(rows, predict_records, "rows_per_second", c, config)
            if rate is None:
                continue
            row = {"config": config, "contender": c, "rows_per_second": rate,
                   "gflops": rate * common.predict_flops_per_sample(hidden) / 1e9}
            for key in ("latency_us", "latency_p90_us", "max_abs_error"):
                row[key] = median_of(predict_records, key, contender=c, config=config)
            if peak:
                row["pct_of_peak"] = 100 * row["gflops"] / peak
            if ceiling:
                row["pct_of_ceiling"] = 100 * row["gflops"] / ceiling
            rows.append(row)
        ort = next((r for r in rows if r["contender"] == "onnxruntime" and "rows_per_second" in r), None)
        for r in rows:
            if ort and "rows_per_second" in r:
                r["bulk_x_onnxruntime"] = r["rows_per_second"] / ort["rows_per_second"]
                r["latency_x_onnxruntime"] = r["latency_us"] / ort["latency_us"]
        s["predict"] += rows

    for rec in records:
        if rec["spec"]["task"] == "memory":
            s["memory"].append(dict(contender=rec["spec"]["contender"], config=rec["spec"]["config"],
                                    n=rec["spec"]["n"], **rec["result"]))

    scaling = [r for r in records if r["spec"].get("group")]
    if scaling:
        small = median_of(scaling, "epoch_seconds", group="scaling-n", n=args.n)
        large = median_of(scaling, "epoch_seconds", group="scaling-n", n=4 * args.n)
        one = median_of(scaling, "epoch_seconds", group="scaling-threads", threads=1)
        many = median_of(scaling, "epoch_seconds", group="scaling-threads", threads=args.threads)
        s["scaling"] = {"epoch_seconds_n": small, "epoch_seconds_4n": large,
                        "ratio_4n_over_n": large / small if small and large else None,
                        "epoch_seconds_1_thread": one, f"epoch_seconds_{args.threads}_threads": many,
                        "speedup": one / many if one and many else None}
    return s


def far(result):
    """Whether the worker's first two cores did not share a cache when it started or ended."""
    return any(ns is not None and ns >= common.NEAR_NS for ns in result.get("core_round_trip_ns", []))


def fmt(x, spec=",.0f"):
    return "–" if x is None else format(x, spec)


def markdown(s, machine, args):
    out = ["# fastmlp benchmark", "",
           f"Command: `{machine['command']}`  ", f"Date: {machine['date']}  ",
           f"Machine: {machine['cpu']}, {machine['cores']} cores available, "
           f"{machine['threads']} threads per contender; load average {machine['load_start']} at the "
           f"start, {machine['load_end']} at the end (other work on the machine adds noise)  ",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()) + "  ",
           *peak_lines(s, machine),
           f"Noise: other processes used over 10% of the machine during {machine['loaded']} of "
           f"{machine['measurements']} measurements (median share {100 * machine['foreign_median']:.0f}%; "
           "`foreign_cpu_share` per record in latest.json)" + ("  " if machine.get("placed") else ""),
           *([f"Placement: before each {machine['threads']}-thread worker the driver waited (up to "
              f"{getattr(args, 'wait_near', 0):.0f} s) for its first two cores to share a cache (a "
              f"cache line's round trip under {common.NEAR_NS} ns; bench/placement.c says why); "
              f"{machine['far']} of {machine['placed']} such measurements started or ended on cores "
              "that did not (`core_round_trip_ns` per record)"] if machine.get("placed") else []),
           ""]
    if s["train"]:
        out += [f"## Training: float32, SGD momentum 0.9, shuffled, n = {args.n} rows × 784, "
                f"10 classes (medians of {args.rounds} rounds)", "",
                "Rates as % of the float32 FMA peak and of OpenBLAS's GEMM rate, at 2 flops per "
                "multiply-add of forward and dW of every layer and of dJ/dh of every layer but the "
                "first; × best peer = "
                "samples/s over the fastest non-fastmlp contender's (both medians); best round = the fastest "
                "of the rounds, a hint of what the contender does when nothing else competes for the cores.", "",
                "| config (batch) | contender | samples/s | s/epoch | % FMA peak | % OpenBLAS GEMM | "
                "× best peer | best round samples/s |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in s["train"]:
            name = LABELS[r["contender"]]
            if "error" in r:
                out.append(f"| {r['config']} | {name} | {r['error']} | | | | | |")
                continue
            note = " (best peer)" if r.get("best_peer") == r["contender"] else ""
            out.append(f"| {r['config']} ({r['batch']}) | {name}{note} | {fmt(r['samples_per_second'])} | "
                       f"{fmt(r['epoch_seconds'], '.3f')} | {fmt(r.get('pct_of_peak'), '.1f')}% | "
                       f"{fmt(r.get('pct_of_ceiling'), '.1f')}% | "
                       f"{fmt(r.get('x_best_peer'), '.2f')} | {fmt(r['best_round_samples_per_second'])} |")
        out.append("")
    if s["predict"]:
        out += [f"## Inference: bulk predict_proba over {args.rows} rows ({args.threads} threads) and "
                f"one (1, 784) float32 row (median of {args.calls} calls; 1 thread)", "",
                "| config | contender | bulk rows/s | % FMA peak | % OpenBLAS GEMM | × onnxruntime | "
                "one row µs (p90) | × onnxruntime latency | max abs err |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in s["predict"]:
            name = LABELS[r["contender"]]
            if "error" in r:
                out.append(f"| {r['config']} | {name} | {r['error']} | | | | | | |")
                continue
            out.append(f"| {r['config']} | {name} | {fmt(r['rows_per_second'])} | "
                       f"{fmt(r.get('pct_of_peak'), '.1f')}% | {fmt(r.get('pct_of_ceiling'), '.1f')}% | "
                       f"{fmt(r.get('bulk_x_onnxruntime'), '.2f')} | "
                       f"{fmt(r['latency_us'], '.1f')} ({fmt(r['latency_p90_us'], '.1f')}) | "
                       f"{fmt(r.get('latency_x_onnxruntime'), '.2f')} | {fmt(r['max_abs_error'], '.1e')} |")
        out.append("")
    if s["memory"]:
        out += ["## Memory: peak RSS of one epoch of fit (784-100-10) beyond X", "",
                "| contender | X MB | RSS after X MB | peak MB | growth beyond X MB | % of X |",
                "|---|---|---:|---:|---:|---:|"]
        for r in s["memory"]:
            if "peak" not in r:
                out.append(f"| {r['contender']} | {str(r.get('error', r.get('skipped')))[-80:]} | | | | |")
                continue
            mb = 1 / 2**20
            out.append(f"| {r['contender']} | {r['x_bytes'] * mb:.0f} | {r['rss_after_x'] * mb:.0f} | "
                       f"{r['peak'] * mb:.0f} | {r['growth_bytes'] * mb:.0f} | {r['growth_pct_of_x']:.1f}% |")
        out.append("")
    if s["scaling"]:
        sc = s["scaling"]
        out += ["## Scaling (fastmlp)", "", "| measurement | seconds per epoch | ratio |", "|---|---:|---:|",
                f"| 784-256-256-10, n = {args.n} | {fmt(sc['epoch_seconds_n'], '.3f')} | |",
                f"| 784-256-256-10, n = {4 * args.n} | {fmt(sc['epoch_seconds_4n'], '.3f')} | "
                f"{fmt(sc['ratio_4n_over_n'], '.2f')} (4.00 = linear) |",
                f"| 784-1024-1024-10, 1 thread | {fmt(sc['epoch_seconds_1_thread'], '.3f')} | |",
                f"| 784-1024-1024-10, {args.threads} threads | "
                f"{fmt(sc[f'epoch_seconds_{args.threads}_threads'], '.3f')} | "
                f"{fmt(sc['speedup'], '.2f')}× speed-up |", ""]
    return "\n".join(out)


def peak_lines(s, machine):
    """The header's two yardsticks: the machine's FMA peak, then OpenBLAS's GEMM rate."""
    lines = []
    p = s.get("fma_peak")
    if p:
        how = (f"measured by a C probe of independent FMA chains built at run time for {p['isa']}"
               if p["measured"] else "ESTIMATED from the CPU's flags and clock, not measured")
        lines.append(
            f"FMA peak ({how}; best of 5 runs per round, median over {p['rounds']} rounds): "
            f"**float32 {fmt(p['f32_all'], '.1f')} GFLOP/s on {p['threads']} threads** "
            f"({fmt(p['f32_1'], '.1f')} on 1), float64 {fmt(p['f64_all'], '.1f')} "
            f"({fmt(p['f64_1'], '.1f')} on 1)"
            + "; each thread timed by its own CPU time  ")
    if s.get("gemm_gflops"):
        share = (f", {100 * s['gemm_gflops'] / p['f32_all']:.0f}% of the FMA peak"
                 if p and p.get("f32_all") else "")
        lines.append(
            f"numpy float32 2048³ matmul ({machine['threads']} threads, {machine.get('blas', '?')}; "
            f"best product per process, median over rounds): {fmt(s['gemm_gflops'], '.1f')} "
            f"GFLOP/s{share}: OpenBLAS's rate, not the machine's limit  ")
    return lines


def cpu_model():
    return common.benchmark.cpu_model()


def versions(records):
    found = {"python": platform.python_version()}
    for rec in records:
        v = rec["result"].get("version")
        c = rec["spec"].get("contender") or rec["spec"]["task"]
        name = {"gemm": "numpy", "export": "torch", "torch_compile": "torch"}.get(c, c.split(":")[0])
        if v and name not in found:
            found[name] = v
    return found


def render(path, readme):
    """Tables again from a results JSON (no measuring): e.g. to put an earlier run in the README."""
    with open(path) as f:
        data = json.load(f)
    args = argparse.Namespace(**data["args"])
    text = markdown(summarize(data["records"], args), data["machine"], args)
    print(text)
    if readme:
        update_readme(text)


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        return render(args.render, args.readme)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.time()
    records = run_all(args)
    s = summarize(records, args)
    gemm = next((r["result"] for r in records if r["spec"]["task"] == "gemm" and "blas" in r["result"]), {})
    machine = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
               "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)]
                                                + sys.argv[1:]),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "load_start": load_start, "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
               "seconds": time.time() - started, "versions": versions(records),
               "blas": ", ".join(gemm.get("blas", [])),
               "measurements": len(records),
               "loaded": sum(1 for r in records if r["result"].get("foreign_cpu_share", 0) > 0.1),
               "foreign_median": statistics.median([r["result"].get("foreign_cpu_share", 0)
                                                    for r in records] or [0]),
               "far": sum(1 for r in records if far(r["result"])),
               "placed": sum(1 for r in records
                             if any(r["result"].get("core_round_trip_ns") or [None]))}
    text = markdown(s, machine, args)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"machine": machine, "args": {k: (sorted(v) if isinstance(v, set) else v)
                                                for k, v in vars(args).items()},
                   "summary": s, "records": records}, f, indent=1)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text + "\n")
    if args.readme:
        update_readme(text)


BEGIN, END = "<!-- latest results: written by bench/run.py --readme -->", "<!-- end of latest results -->"


def update_readme(text):
    """Replace what lies between the markers in bench/README.md with `text`, its title demoted."""
    path = os.path.join(HERE, "README.md")
    with open(path) as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        print(f"bench/README.md has no '{BEGIN}' marker: not updated", file=sys.stderr)
        return
    body = text.replace("# fastmlp benchmark", "## Latest results", 1).replace("\n## ", "\n### ")
    head, rest = readme.split(BEGIN, 1)
    with open(path, "w") as f:
        f.write(head + BEGIN + "\n" + body + "\n" + END + rest.split(END, 1)[1])


if __name__ == "__main__":
    main()
