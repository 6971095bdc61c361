"""`adacompress replay`: a small seeded scenario replayed through both rule sets, against a stored summary.

The golden file `tests/expected/replay_summary.json` is what this exact run wrote (the real CNN, real codecs,
seeded daemon and stream); set ADACOMPRESS_REGENERATE_GOLDEN=1 to rewrite it, only on purpose, after checking
why it changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adacompress.cli import main
from adacompress.envs.scenarios import load_scenario
from adacompress.service.replay import RECOVERY_WINDOW, ReplayError, ReplayOptions, _recovery, replay

GOLDEN = Path(__file__).parents[1] / "expected" / "replay_summary.json"
SCENARIO = """
name = "tiny-night"
seed = 0

[[phases]]
name = "day"
images = 8

[[phases]]
name = "night"
images = 8
transform = "night"
severity = 4
"""


@pytest.fixture
def scenario_and_photos(tmp_path, photos) -> tuple[Path, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, photo in enumerate(photos[:4]):
        photo.save(folder / f"photo{i}.png")
    scenario = tmp_path / "tiny-night.toml"
    scenario.write_text(SCENARIO)
    return scenario, folder


def test_a_seeded_replay_writes_the_stored_summary_a_timeline_and_a_plot(scenario_and_photos, tmp_path, capsys):
    scenario, folder = scenario_and_photos
    out = tmp_path / "out"
    code = main(["replay", str(scenario), "--images", str(folder), "--backend", "local:lite0", "--no-learn",
                 "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    if os.environ.get("ADACOMPRESS_REGENERATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(summary, indent=2) + "\n")
    assert summary == json.loads(GOLDEN.read_text())
    rows = [json.loads(line) for line in (out / "timeline.jsonl").read_text().splitlines()]
    assert [row["rules"] for row in rows] == ["adacompress"] * 16 + ["paper"] * 16
    assert [row["phase"] for row in rows[:16]] == ["day"] * 8 + ["night"] * 8
    for name in ("adacompress", "paper"):
        mine = [row for row in rows if row["rules"] == name]
        night = summary["rules"][name]["phases"][1]
        assert night["images"] == 8
        assert night["accuracy"] == pytest.approx(sum(row["hit"] for row in mine[8:]) / 8)
        assert night["bytes_vs_reference"] == pytest.approx(
            sum(row["bytes"] for row in mine[8:]) / sum(row["reference_bytes"] for row in mine[8:]), abs=1e-6)
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "adacompress night" in " ".join(printed.split()) and "paper day" in " ".join(printed.split())


def test_a_backend_change_cannot_be_replayed_through_a_proxy(scenario_and_photos):
    from adacompress.images import ImageSet

    _, folder = scenario_and_photos
    with pytest.raises(ReplayError, match="changes the backend mid-stream"):
        replay(load_scenario("provider-swap"), ImageSet.from_folder(folder),
               ReplayOptions(proxy="http://127.0.0.1:9"))


def test_images_to_recover_counts_to_the_first_window_back_within_five_points():
    before = [{"hit": True}] * 100
    after = [{"hit": False}] * 30 + [{"hit": True}] * 200
    # Level 1.0 before; a window needs 48 hits of 50 (0.95): it must start past the 28th miss, so it ends at 78.
    assert _recovery(before + after, 100) == 78
    assert _recovery(before + [{"hit": True}] * 60, 100) == RECOVERY_WINDOW
    assert _recovery(before + [{"hit": False}] * 60, 100) is None


def test_a_replay_through_a_running_proxy_uses_its_daemon(scenario_and_photos, tmp_path):
    from _proxy_server import make_service, running

    from adacompress.images import ImageSet
    from adacompress.service.assemble import ServeOptions
    from adacompress.service.replay import write_outputs

    scenario_file, folder = scenario_and_photos
    scenario = load_scenario(scenario_file)
    service = make_service(ServeOptions(backend="local:lite0", workers=0))
    with running(service) as url:
        timelines = replay(scenario, ImageSet.from_folder(folder), ReplayOptions(backend="local:lite0", proxy=url))
    assert list(timelines) == ["proxy"] and len(timelines["proxy"]) == 16
    assert service.daemon.state.requests == 16  # every image went through the proxy's daemon
    assert all(row["action"].startswith("jpeg:") for row in timelines["proxy"])
    summary = write_outputs(scenario, timelines, tmp_path / "out")
    assert summary["rules"]["proxy"]["whole"]["images"] == 16
