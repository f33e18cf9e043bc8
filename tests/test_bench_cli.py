"""python -m fastmlp bench: a tiny run through main(argv) and the JSON it writes (no timings
are asserted: the figures depend on the machine and its load)."""
import json

import pytest

from fastmlp.__main__ import main
from fastmlp.benchmark import (bench, fma_peak, predict_flops_per_sample,
                               train_flops_per_sample)


def test_bench_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    status = main(["bench", "--quick", "--configs", "none", "--hidden", "8,4", "--batch", "50",
                   "--n", "200", "--rounds", "1", "--threads", "1", "--peers", "sklearn",
                   "--json", str(path)])
    assert status == 0
    data = json.loads(path.read_text())
    peak = data["fma_peak"]
    assert peak["isa"] in ("avx512", "avx2", "scalar")
    assert peak["f32_1"] > 0 and peak["f64_1"] > 0 and peak["f32_all"] >= 0.89 * peak["f32_1"]
    assert data["settings"] == {"threads": 1, "n": 200, "rows": 200, "rounds": 1,
                                "min_seconds": 0.2, "peers": ["sklearn"]}
    (config,) = data["configs"]
    assert config["name"] == "784-8-4-10" and config["hidden"] == [8, 4] and config["batch"] == 50
    assert config["train_flops_per_sample"] == 4 * (784 * 8 + 8 * 4 + 4 * 10) + 2 * (8 * 4 + 4 * 10)
    ours, peer = config["contenders"]["fastmlp"], config["contenders"]["sklearn"]
    for task, key, flops in (("train", "samples_per_second", config["train_flops_per_sample"]),
                             ("predict", "rows_per_second", config["predict_flops_per_sample"])):
        r = ours[task]
        assert r[key] > 0 and r["rounds"] == [r[key]]
        assert r["gflops"] == pytest.approx(r[key] * flops / 1e9)
        assert r["pct_of_peak"] == pytest.approx(100 * r["gflops"] / peak["f32_all"])
    assert "predict" not in peer  # scikit-learn is a training peer only
    assert peer["train"]["fastmlp_x"] == pytest.approx(
        ours["train"]["samples_per_second"] / peer["train"]["samples_per_second"])
    out = capsys.readouterr().out
    assert "FMA peak" in out and "784-8-4-10 (batch 50)" in out and str(path) in out


def test_flops_per_sample():
    # forward and dW of every layer, dJ/dh of every layer but the first: 2 flops a multiply-add
    units = [784, 100, 10]
    assert train_flops_per_sample(units) == 2 * (784 * 100 + 100 * 10) * 2 + 2 * 100 * 10
    assert predict_flops_per_sample(units) == 2 * (784 * 100 + 100 * 10)


@pytest.mark.parametrize("kwargs, match", [
    ({"configs": ["784-9-10"]}, "unknown configurations"),
    ({"peers": ["tensorflow"]}, "unknown peers"),
    ({"configs": [], "batch": 32}, "give both"),
    ({"configs": [], "hidden": (0,)}, "positive layer sizes"),
    ({"configs": [], "hidden": (8,), "n": 0}, "n must be a positive int"),
    ({"configs": []}, "nothing to run"),
])
def test_bench_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bench(**kwargs)


def test_bench_cli_rejects_bad_hidden():
    with pytest.raises(SystemExit, match="--hidden takes comma-separated"):
        main(["bench", "--hidden", "8,x"])


def test_fma_peak_rejects_bad_threads():
    with pytest.raises(ValueError, match="threads must be a positive int"):
        fma_peak(threads=0)
