"""The `adacompress` console script, called in process through `main(argv)`."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from adacompress import __version__
from adacompress.cli import COMMANDS, PLANNED_RELEASE, main
from adacompress.cloud_backends.local import LocalBackend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION
from adacompress.images import ImageSet
from adacompress.outcomes import OutcomeTable

NOT_BUILT = [name for name in COMMANDS
             if importlib.util.find_spec(f"adacompress.commands.{name.replace('-', '_')}") is None]
"""Commands whose module is not in this checkout (none in this release; the mechanism stays for the next)."""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `adacompress ARGV` in process: (exit code, stdout, stderr); argparse's exits count too."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name in ["demo", "train", "eval", "bench", "serve", "replay", "compress"]:
        assert f"    {name}" in out, name


def test_no_command_prints_help_and_fails(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 2
    assert "COMMAND" in out and "demo" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"adacompress {__version__}"


def test_planned_commands_are_commands():
    assert set(PLANNED_RELEASE) <= set(COMMANDS)


def test_serve_help_names_its_flags(capsys):
    code, out, _ = run_cli(capsys, "serve", "--help")
    flat = " ".join(out.split())
    assert code == 0
    for flag in ("--backend", "--policy", "--redis", "--workers", "--target-accuracy", "--rules", "--learn"):
        assert flag in flat, flag


@pytest.mark.parametrize("name", [name for name in COMMANDS if name not in NOT_BUILT])
def test_every_command_help_ends_with_an_example(capsys, name):
    code, out, _ = run_cli(capsys, name, "--help")
    assert code == 0
    lines = out.rstrip().splitlines()
    assert lines[-1].startswith(f"  adacompress {name} "), lines[-1]
    assert "examples:" in lines


@pytest.mark.parametrize("name", NOT_BUILT)
@pytest.mark.parametrize("extra", [[], ["--port", "8080", "scenario.toml"]])
def test_commands_not_built_yet_say_which_release_brings_them(capsys, name, extra):
    code, out, err = run_cli(capsys, name, *extra)
    assert code == 2
    assert f"not in release {__version__}" in err
    assert f"arrives in release {PLANNED_RELEASE[name]}" in err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", NOT_BUILT)
def test_help_marks_commands_not_built_yet(capsys, name):
    _, out, _ = run_cli(capsys, "--help")
    flat = " ".join(out.split())  # argparse wraps help lines
    assert f"{name} {COMMANDS[name]} [arrives in release {PLANNED_RELEASE[name]}]" in flat


def test_eval_without_policies_compares_every_quality_the_oracle_and_the_agent(capsys, image_folder, tmp_path):
    out_json = tmp_path / "eval.json"
    code, out, err = run_cli(capsys, "eval", "--images", str(image_folder), "--json", str(out_json),
                             "--backend", "local:lite0", "--no-progress")
    assert code == 0, err
    everything = json.loads(out_json.read_text())["results"]
    assert everything[-1]["policy"] == "agent:local-lite2"
    n_images = len(list(image_folder.iterdir()))
    results, extra = everything[: len(DEFAULT_LADDER)], everything[len(DEFAULT_LADDER):]

    assert [r["policy"] for r in results] == [f"fixed:{a.quality}" for a in DEFAULT_LADDER.actions]
    assert extra[0]["policy"] == "oracle" and extra[0]["accuracy"] == 1.0 and extra[0]["backend_calls"] == 0
    assert all(r["images"] == n_images for r in results)
    ratios = [r["bytes_vs_reference"] for r in results]
    assert all(a < b for a, b in zip(ratios, ratios[1:], strict=False)), ratios
    reference = results[DEFAULT_LADDER.actions.index(REFERENCE_ACTION)]
    assert reference["bytes_vs_reference"] == 1.0 and reference["accuracy"] == 1.0
    assert reference["backend_calls"] == 0  # the reference answers were already paid for
    table = OutcomeTable(ImageSet.from_folder(image_folder), LocalBackend("lite0"), DEFAULT_LADDER)
    for rung, result in enumerate(results):  # each accuracy, recomputed image by image
        hits = [table.outcome(i, rung).hit for i in range(n_images)]
        assert result["accuracy"] == sum(hits) / n_images, result["policy"]
    assert extra[0]["bytes_vs_reference"] <= min(r["bytes_vs_reference"] for r in results if r["accuracy"] == 1.0)
    assert sum(r["backend_calls"] for r in results) == n_images * len(DEFAULT_LADDER)

    assert f"{n_images} images, backend local:lite0" in out
    assert "oracle: " in out and "the cheapest fixed quality as accurate" in out
    table_rows = [line for line in out.splitlines() if line.startswith("fixed:")]
    assert [row.split()[0] for row in table_rows] == [r["policy"] for r in results]
    assert f"{n_images * len(DEFAULT_LADDER)} calls" in out  # every rung once; the reference is one of them


def test_demo_sends_the_photos_through_the_proxy_and_counts_what_it_saved(capsys, photos, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, photo in enumerate(photos[:3]):
        photo.save(folder / f"photo{i}.png")
    photos[0].resize((60, 60)).save(folder / "tiny.png")  # under Rekognition's 80 px: refused, the rest go on
    code, out, err = run_cli(capsys, "demo", "--images", str(folder), "--backend", "local:lite0")
    assert code == 0, err
    n_images = 3
    assert re.search(r"tiny\.png +refused: InvalidParameterException", out)
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[-1] in ("yes", "NO")]
    assert len(rows) == n_images
    sent = sum(int(row[1].replace(",", "")) for row in rows)
    reference = sum(int(row[2].replace(",", "")) for row in rows)
    kept = sum(row[-1] == "yes" for row in rows)
    assert f"sent {sent:,} bytes where the q=75 reference is {reference:,}" in out and sent < reference
    assert f"{n_images} uploads answered" in out and f"{kept}/{n_images} answers kept" in out
    assert "Proxy stopped." in out
    assert all(row[3].startswith("jpeg:") for row in rows)


@pytest.mark.parametrize("argv, named", [
    (["--images", "{tmp}/missing"], "does not exist"),
    (["--images", "{tmp}"], "no images"),
    (["--backend", "nowhere"], "error [unknown_backend]: unknown backend 'nowhere'"),
    (["--backend", "local:lite9"], "error [model_unavailable]: unknown model 'lite9'"),
])
def test_demo_errors_are_one_clear_line(capsys, tmp_path, argv, named):
    code, _, err = run_cli(capsys, "demo", *(a.format(tmp=tmp_path) for a in argv))
    assert code == 1
    assert named in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_option_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "demo", "--no-such-option")
    assert code == 2
    assert "unrecognized arguments: --no-such-option" in err
