"""Shipped agents: package data found from a source tree, an installed wheel or `ADACOMPRESS_PRETRAINED_DIR`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from adacompress.agents.agent_file import AgentFileError
from adacompress.agents.policies import load_policy
from adacompress.agents.pretrained import (
    file_sha256,
    load_pretrained,
    model_card,
    pretrained_bytes,
    pretrained_dir,
    shipped_agents,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {"local-lite2", "local-lite2-top1", "local-lite2-res", "local-lite2-res-top1"}


def test_shipped_agents_are_package_data():
    import adacompress

    folder = Path(str(pretrained_dir()))
    assert folder == Path(adacompress.__file__).parent / "pretrained"
    assert SHIPPED <= set(shipped_agents())
    for name in shipped_agents():
        agent = load_pretrained(name)
        card = model_card(name)
        assert card["agent_sha256"] == file_sha256(folder / f"{name}.zip")
        assert agent.ladder.spec == card["ladder"] and agent.reference.label == card["reference"]
        assert agent.config.featurizer == card["featurizer"]
        assert load_policy(f"pretrained:{name}").version == agent.version


@pytest.fixture
def agent_dir(tmp_path, monkeypatch, trained_agent) -> Path:
    """A folder holding one agent, `mine`, with its model card, made the pretrained folder."""
    folder = tmp_path / "agents"
    path = trained_agent.save(folder / "mine.zip")
    (folder / "mine.json").write_text(json.dumps({"name": "mine", "agent_sha256": file_sha256(path)}))
    monkeypatch.setenv("ADACOMPRESS_PRETRAINED_DIR", str(folder))
    return folder


def test_pretrained_dir_override_replaces_the_shipped_agents(agent_dir, trained_agent):
    assert Path(str(pretrained_dir())) == agent_dir
    assert shipped_agents() == ["mine"]
    assert load_pretrained("mine") == trained_agent
    policy = load_policy("pretrained:mine")
    assert policy.version == trained_agent.version and policy.name == "agent:mine"
    with pytest.raises(AgentFileError, match=r"no agent named 'local-lite2' in ADACOMPRESS_PRETRAINED_DIR "
                                             r"\(.*agents\); it holds: mine$"):
        load_pretrained("local-lite2")


def test_an_agent_that_does_not_match_its_card_is_refused(agent_dir):
    (agent_dir / "mine.json").write_text(json.dumps({"agent_sha256": "0" * 64}))
    with pytest.raises(AgentFileError, match=r"pretrained agent 'mine' does not match the SHA-256 in its model card"):
        pretrained_bytes("mine")
    with pytest.raises(AgentFileError, match=r"does not match the SHA-256"):
        load_policy("pretrained:mine")


def test_a_replaced_agent_file_is_refused_by_its_old_card(agent_dir, trained_agent):
    other = replace(trained_agent, metadata={"replaced": True})
    assert other.version == trained_agent.version
    other.save(agent_dir / "mine.zip")  # same weights, another file: the card pins the file, not only the weights
    with pytest.raises(AgentFileError, match=r"does not match the SHA-256"):
        load_pretrained("mine")


def test_an_empty_override_lists_no_agents(tmp_path, monkeypatch):
    monkeypatch.setenv("ADACOMPRESS_PRETRAINED_DIR", str(tmp_path))
    assert shipped_agents() == []
    with pytest.raises(AgentFileError, match=r"no agent named 'local-lite2' in ADACOMPRESS_PRETRAINED_DIR"
                                             r" \(.*\); it holds: none$"):
        load_pretrained("local-lite2")


def test_an_override_that_does_not_exist_lists_no_agents(tmp_path, monkeypatch):
    monkeypatch.setenv("ADACOMPRESS_PRETRAINED_DIR", str(tmp_path / "missing"))
    assert shipped_agents() == []
    with pytest.raises(AgentFileError, match=r"ADACOMPRESS_PRETRAINED_DIR \(.*missing\)"):
        load_policy("pretrained:local-lite2")


INSTALLED_CHECK = textwrap.dedent("""
    import io, json, sys
    import numpy as np
    from PIL import Image
    import adacompress
    from adacompress.agents.policies import load_policy
    from adacompress.agents.pretrained import shipped_agents

    rng = np.random.default_rng(0)
    pixels = np.clip(np.linspace(0, 255, 160)[None, :, None] + rng.normal(0, 20, (120, 160, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    decision = load_policy("pretrained:local-lite2").decide(buffer.getvalue())
    json.dump({"file": adacompress.__file__, "agents": shipped_agents(), "action": decision.action.label,
               "version": decision.policy_version, "bytes": decision.bytes}, sys.stdout)
""")


def test_an_installed_wheel_finds_the_shipped_agents(tmp_path):
    # Build from a clean copy: an in-tree build would write build/ into the working tree, and a stale
    # build/lib there could carry agents into the wheel that the package configuration forgets.
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "runs"))
    python = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*python, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("adacompress-*.whl")
    site = tmp_path / "site"
    subprocess.run([*python, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    shutil.rmtree(source)  # nothing of the source tree is left to import from

    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("ADACOMPRESS_PRETRAINED_DIR", None)
    run = subprocess.run([sys.executable, "-c", INSTALLED_CHECK], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert Path(report["file"]).resolve().is_relative_to(site.resolve())
    assert SHIPPED <= set(report["agents"])
    assert report["version"] == load_pretrained("local-lite2").version
    assert report["action"].startswith("jpeg:") and report["bytes"] > 0
