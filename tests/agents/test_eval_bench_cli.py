"""`eval`, `bench` and `compress` through the CLI on real photos and the real CNN backend."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from adacompress.cli import main
from adacompress.codec import DEFAULT_LADDER, Action, codec_available, encode
from adacompress.commands.bench import dominates
from adacompress.evaluation import EvalResult

BACKEND = "local:lite0"
REQUIRED = {"images", "bytes_vs_reference", "accuracy", "mean_bytes", "backend_calls", "quality_histogram"}


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory, photo_dir):
    out = tmp_path_factory.mktemp("agent") / "tiny.zip"
    assert main(["train", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(out), "--no-progress",
                 "--steps", "16", "--net-arch", "16"]) == 0
    return out


def test_eval_json_has_the_documented_fields(tmp_path, photo_dir, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--backend", BACKEND, "--images", str(photo_dir), "--policy", "fixed:15",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert REQUIRED <= set(result)
    assert result["images"] == 8
    assert result["quality_histogram"] == {"jpeg:15": 8}
    assert result["backend_calls"] == 16  # a reference and one upload per image
    assert 0.2 < result["bytes_vs_reference"] < 0.6  # q=15 is a fraction of q=75
    assert "fixed:15" in capsys.readouterr().out


def test_eval_several_policies_and_an_agent(tmp_path, photo_dir, tiny_agent):
    out = tmp_path / "eval.json"
    assert main(["eval", "--backend", BACKEND, "--images", str(photo_dir), "--policy", "fixed:95",
                 "--policy", "oracle", "--policy", str(tiny_agent), "--json", str(out)]) == 0
    results = {r["policy"]: r for r in json.loads(out.read_text())["results"]}
    assert results["oracle"]["accuracy"] == 1.0
    assert results["oracle"]["bytes_vs_reference"] < results["fixed:95"]["bytes_vs_reference"]
    agent = results["agent:tiny"]
    assert REQUIRED <= set(agent) and sum(agent["quality_histogram"].values()) == 8


def test_bench_writes_the_rate_accuracy_table_and_plot(tmp_path, photo_dir, tiny_agent):
    out = tmp_path / "bench"
    assert main(["bench", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(out),
                 "--agent", str(tiny_agent)]) == 0
    summary = json.loads((out / "bench.json").read_text())
    rows = summary["rows"]
    jpeg = [r for r in rows if r["kind"] == "fixed" and r["codec"] == "jpeg"]
    assert [r["quality"] for r in jpeg] == [a.quality for a in DEFAULT_LADDER.actions]
    assert all(a["bytes_vs_reference"] < b["bytes_vs_reference"] for a, b in zip(jpeg, jpeg[1:], strict=False))
    assert any(r["kind"] == "fixed" and r["codec"] == "webp" for r in rows) == codec_available("webp")
    assert {r["policy"] for r in rows if r["kind"] == "oracle"} >= {"oracle:jpeg"}
    (agent,) = [r for r in rows if r["kind"] == "agent"]
    fixed = [EvalResult(**{k: r[k] for k in EvalResult.__dataclass_fields__}) for r in jpeg]
    mine = EvalResult(**{k: agent[k] for k in EvalResult.__dataclass_fields__})
    assert agent["dominates_fixed_jpeg"] == dominates(mine, fixed)
    with Image.open(out / "bench.png") as plot:
        assert plot.size[0] > 400


def test_dominance_rule():
    def result(b, a):
        return EvalResult("p", 10, b, a, 0, 0, 0)

    fixed = [result(0.2, 0.8), result(0.3, 0.97), result(0.5, 1.0)]
    assert dominates(result(0.25, 0.97), fixed)
    assert not dominates(result(0.35, 0.97), fixed)  # q with accuracy 0.97 is cheaper
    assert dominates(result(0.45, 0.99), fixed)


def test_compress_writes_each_image_at_the_policy_quality(tmp_path, photo_dir, capsys):
    out = tmp_path / "out"
    assert main(["compress", str(photo_dir), "--policy", "fixed:25", "--out", str(out)]) == 0
    written = sorted(out.glob("*.jpg"))
    assert [p.stem for p in written] == [p.stem for p in sorted(photo_dir.glob("*.png"))]
    for path in written:
        with Image.open(photo_dir / f"{path.stem}.png") as original:
            assert path.read_bytes() == encode(original.convert("RGB"), Action("jpeg", 25)).data
    assert "of the q=75 bytes" in capsys.readouterr().out


def test_compress_refuses_the_oracle(tmp_path, photo_dir, capsys):
    assert main(["compress", str(photo_dir), "--policy", "oracle", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "error [bad_policy]" in err and "cannot decide for a new upload" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
