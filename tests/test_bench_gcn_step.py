"""bench/bench_gcn_step.py at one step: every variant trains, and the table's ratios are against the eager step."""

from __future__ import annotations

from fixtures_bench import bench_module


def test_bench_gcn_step_table(tmp_path, capsys):
    doc = tmp_path / "gcn_step.md"
    bench_module("bench_gcn_step").main(
        ["--no-compile", "--steps", "1", "--rounds", "1", "--write-doc", str(doc)]
    )
    rows = [line for line in doc.read_text().splitlines() if line.startswith("| eager")]
    assert [r.split("|")[1].strip() for r in rows] == ["eager (fit today)", "eager, oneDNN off"]
    assert rows[0].split("|")[4].strip() == "1x"
    ms, clips_s = (float(x) for x in rows[1].split("|")[2:4])
    assert ms > 0
    assert abs(clips_s - 16 / (ms / 1000)) / clips_s < 0.05  # clips/s is the batch over the step time
    assert "TF32" not in capsys.readouterr().err
    assert "stgcnpp `small`" in doc.read_text()
