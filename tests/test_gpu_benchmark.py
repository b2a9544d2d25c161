"""benchmarks/gpu.py must run the day a GPU is lent: `--smoke` runs every row for two steps on the CPU."""

import importlib
import json
import math

from tests.helpers import ROOT


def test_gpu_benchmark_smoke_runs_every_row_and_writes_its_table(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.chdir(ROOT)  # it reads configs/quick.toml, as when run from the repository
    gpu = importlib.import_module("gpu")
    report = gpu.main(["--smoke", "--out", str(tmp_path)])
    rows = {(r["loop"], r["image_size"], r["precision"], r["sync_every"]) for r in report["rows"]}
    expected = {("tutorial", s, p, None) for s in gpu.SIZES for p in gpu.PRECISIONS}
    expected |= {("lab train", s, p, k) for s in gpu.SIZES for p in gpu.PRECISIONS for k in gpu.SYNCS}
    expected.add(("lab, foreach Adam", 64, "bf16", 25))
    assert rows == expected and len(report["rows"]) == len(expected) == 13
    assert gpu.lab_train.ADAM_ON_CUDA == {"fused": True}  # put back after its row
    assert all(r["images_per_s"] > 0 and r["peak_mib"] is None for r in report["rows"])  # no GPU memory on the CPU
    job = report["main_job"]
    assert (
        job["epochs"] == 1
        and not job["reused"]
        and math.isfinite(job["fid"])
        and set(job["attribute_accuracy"]) >= {"petal_colour", "petal_count"}
    )
    assert json.loads((tmp_path / "gpu.json").read_text()) == json.loads(json.dumps(report))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert sum(line.startswith("tutorial ") for line in lines) == 4
    assert sum(line.startswith("lab train ") and "(best row)" not in line for line in lines) == 8
    assert "lab train (best row) / tutorial fp32 at 64 px" in out and "main job (smoke" in out
    assert (tmp_path / "main-job" / "eval.json").is_file()
