"""`eval`, `bench` and `compress` through the CLI on real photos and the real CNN backend."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys

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



def test_bench_draws_the_scale_curves_of_an_agent_with_size_caps(tmp_path, photo_dir):
    agent = tmp_path / "sized.zip"
    assert main(["train", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(agent), "--no-progress",
                 "--steps", "8", "--net-arch", "16", "--ladder", "jpeg:5,15,25,75;jpeg:5,15,25@96"]) == 0
    out = tmp_path / "bench"
    assert main(["bench", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(out),
                 "--agent", str(agent)]) == 0
    rows = json.loads((out / "bench.json").read_text())["rows"]
    capped = [r for r in rows if r["kind"] == "fixed" and r["short_side"] == 96]
    assert [r["quality"] for r in capped] == [a.quality for a in DEFAULT_LADDER.actions]  # a whole curve per cap
    full = {r["quality"]: r for r in rows if r["kind"] == "fixed" and r["codec"] == "jpeg" and not r["short_side"]}
    assert all(r["bytes_vs_reference"] < full[r["quality"]]["bytes_vs_reference"] / 2 for r in capped)
    oracles = {r["policy"]: r for r in rows if r["kind"] == "oracle"}
    assert oracles["oracle:jpeg+size"]["bytes_vs_reference"] < oracles["oracle:jpeg"]["bytes_vs_reference"]
    assert oracles["oracle:jpeg+size"]["accuracy"] == oracles["oracle:jpeg"]["accuracy"] == 1.0
    (mine,) = [r for r in rows if r["kind"] == "agent"]
    fixed = [EvalResult(**{k: r[k] for k in EvalResult.__dataclass_fields__})
             for r in rows if r["kind"] == "fixed" and r["codec"] == "jpeg"]
    agent = EvalResult(**{k: mine[k] for k in EvalResult.__dataclass_fields__})
    assert mine["dominates_fixed_jpeg"] == dominates(agent, fixed)  # judged against the capped curves too

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


@pytest.fixture
def mixed_dir(tmp_path, photo_dir):
    """Three good photos and three bad files: not an image, cut short, and too many pixels for a tight limit."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in sorted(photo_dir.glob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "notes.jpg").write_bytes(b"this was never a jpeg\n")
    good = (folder / "photo_00.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    return folder


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_skips_bad_files_naming_each_and_counts_them(tmp_path, mixed_dir, capsys):
    out = tmp_path / "eval.json"
    code, stdout, err = run_cli(capsys, "eval", "--backend", BACKEND, "--images", str(mixed_dir), "--policy",
                                "fixed:15", "--policy", "oracle", "--json", str(out), "--no-progress")
    assert code == 0, err
    assert "skip notes.jpg: [not_an_image]" in stdout
    assert "skip cut.png: [truncated_image]" in stdout
    assert stdout.count("skip ") == 2  # once per file, not once per policy
    results = json.loads(out.read_text())["results"]
    for result in results:
        assert result["images"] == 3
        assert [(s["image"], s["code"]) for s in result["skipped"]] == [("cut.png", "truncated_image"),
                                                                        ("notes.jpg", "not_an_image")]
        assert sum(result["quality_histogram"].values()) == 3
    header, *rows = [line.split() for line in stdout.splitlines() if line.startswith(("policy", "fixed:", "oracle"))]
    assert "skipped" in header
    assert all(row[header.index("skipped")] == "2" for row in rows)


def test_eval_strict_stops_at_the_first_bad_file(tmp_path, mixed_dir, capsys):
    out = tmp_path / "eval.json"
    code, _, err = run_cli(capsys, "eval", "--backend", BACKEND, "--images", str(mixed_dir), "--policy", "fixed:15",
                           "--json", str(out), "--strict", "--no-progress")
    assert code == 1
    assert "error [truncated_image]: cut.png: image" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_eval_fails_when_no_image_is_usable(tmp_path, mixed_dir, capsys, monkeypatch):
    monkeypatch.setenv("ADACOMPRESS_MAX_PIXELS", "1000")  # the good photos too are now too large
    out = tmp_path / "eval.json"
    code, stdout, err = run_cli(capsys, "eval", "--backend", BACKEND, "--images", str(mixed_dir), "--policy",
                                "fixed:15", "--json", str(out), "--no-progress")
    assert code == 1
    assert "skip photo_00.png: [too_many_pixels]" in stdout and "the limit is 1,000 pixels" in stdout
    assert f"error [no_usable_image]: no usable image under {mixed_dir}: 5 skipped, 0 scored" in err
    assert len(err.strip().splitlines()) == 1
    result = json.loads(out.read_text())
    assert result["images"] == 0 and len(result["skipped"]) == 5


def test_bench_skips_bad_files(tmp_path, mixed_dir, tiny_agent, capsys):
    out = tmp_path / "bench"
    code, stdout, err = run_cli(capsys, "bench", "--backend", BACKEND, "--images", str(mixed_dir), "--out", str(out),
                                "--agent", str(tiny_agent), "--no-progress")
    assert code == 0, err
    assert stdout.count("skip ") == 2
    summary = json.loads((out / "bench.json").read_text())
    assert all(r["images"] == 3 and len(r["skipped"]) == 2 for r in summary["rows"])
    assert (out / "bench.png").is_file()


def test_eval_json_reports_calls_cache_hits_bytes_and_spend(tmp_path, photo_dir, capsys):
    out = tmp_path / "eval.json"
    code, stdout, err = run_cli(capsys, "eval", "--backend", BACKEND, "--images", str(photo_dir), "--policy",
                                "fixed:15", "--json", str(out), "--price-per-1k-usd", "1.5")
    assert code == 0, err
    cost = json.loads(out.read_text())["cost"]
    assert cost["backend"] == BACKEND
    assert cost["calls"] == cost["billable_calls"] == 16 and cost["cache_hits"] == 0
    assert cost["bytes_sent"] > 0
    assert cost["price_per_1k_usd"] == 1.5 and cost["estimated_usd"] == pytest.approx(16 * 1.5 / 1000)
    assert f"16 calls, 0 cache hits, {cost['bytes_sent']:,} bytes sent, estimated $0.0240" in stdout
    assert err == ""  # no terminal: no progress bar, nothing on stderr


def test_eval_shows_a_progress_bar_on_a_terminal(tmp_path, photo_dir):
    """A real terminal (a pty) on stderr gets the bar; stdout, a pipe here, keeps only the results."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    process = subprocess.Popen([sys.executable, "-m", "adacompress.cli", "eval", "--backend", BACKEND, "--images",
                                str(photo_dir), "--policy", "fixed:15"], stdout=subprocess.PIPE, stderr=follower,
                               env=env, text=True)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    stdout = process.stdout.read()
    assert process.wait(timeout=60) == 0
    os.close(leader)
    assert "8/8" in shown.decode(errors="replace")
    assert "8/8" not in stdout and stdout.splitlines()[0].startswith("policy")


def test_eval_and_bench_help_name_the_new_options(capsys):
    for command in ("eval", "bench"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for option in ("--strict", "--no-progress", "--price-per-1k-usd", "--reduced-decode-px"):
            assert option in out, (command, option)


def test_eval_reduced_decode_measures_smaller_photos(tmp_path, photo_dir, capsys):
    folder = tmp_path / "jpegs"
    folder.mkdir()
    with Image.open(sorted(photo_dir.glob("*.png"))[0]) as photo:
        photo.convert("RGB").resize((1024, 768)).save(folder / "big.jpg", quality=95)
    sizes = {}
    for extra in ([], ["--reduced-decode-px", "192"]):
        out = tmp_path / "eval.json"
        assert main(["eval", "--backend", BACKEND, "--images", str(folder), "--policy", "fixed:75", "--json",
                     str(out), "--no-progress", *extra]) == 0
        sizes[bool(extra)] = json.loads(out.read_text())["mean_bytes"]
    assert sizes[True] < sizes[False] / 4  # decoded at 1/4 scale (256x192): a sixteenth of the pixels
