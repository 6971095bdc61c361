"""The README's results table is generated from the committed benchmark JSON, never typed by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("make demo") < text.index("## Usage")
    assert text.index("make test") < text.index("## Usage")


def test_readme_sections_come_in_reading_order():
    text = (ROOT / "README.md").read_text()
    sections = ["## Two commands", "## The problem", "## Results", "## Point it at a real provider",
                "## Put the proxy in front of an existing client", "## How to read a run's cost",
                "## Growing past one machine"]
    positions = [text.index(f"\n{section}\n") for section in sections]
    assert positions == sorted(positions), sections


def test_readme_links_every_doc_and_notebook():
    text = (ROOT / "README.md").read_text()
    files = sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(files) >= 6
    for path in files:
        link = path.relative_to(ROOT).as_posix()
        assert f"]({link})" in text, f"README.md does not link {link}"


def test_readme_results_match_the_benchmark_json():
    check = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_table.py"), "--check"], cwd=ROOT)
    assert check.returncode == 0, "README.md is out of date: run `python bench/readme_table.py`"


def test_every_shipped_agent_has_a_matching_model_card():
    from adacompress.agents.pretrained import file_sha256, model_card, shipped_agents

    agents = sorted((ROOT / "adacompress" / "pretrained").glob("*.zip"))
    assert agents, "no shipped agents in adacompress/pretrained/"
    assert sorted(agent.stem for agent in agents) == shipped_agents()
    for agent in agents:
        card = model_card(agent.stem)
        assert card is not None, f"{agent.name} has no model card"
        assert card["agent_sha256"] == file_sha256(agent)
        assert {"backend", "ladder", "training", "heldout"} <= set(card)
        assert card["training"]["backend_calls"] <= card["training"]["max_calls"]


def test_agents_live_only_in_the_package():
    assert not list(ROOT.glob("pretrained/*.zip")), "shipped agents belong in adacompress/pretrained/"
