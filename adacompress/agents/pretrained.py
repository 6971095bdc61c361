"""Find and load shipped agents: `pretrained/NAME.zip` with its model card `pretrained/NAME.json`.

The card records the agent file's SHA-256; `pretrained:NAME` refuses a file that does not match.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from adacompress.agents.dqn import AgentFileError, DqnAgent, load_agent_file


def pretrained_dir() -> Path:
    """`ADACOMPRESS_PRETRAINED_DIR`, else the repository's `pretrained/` folder."""
    override = os.environ.get("ADACOMPRESS_PRETRAINED_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "pretrained"


def shipped_agents() -> list[str]:
    folder = pretrained_dir()
    return sorted(p.stem for p in folder.glob("*.zip")) if folder.is_dir() else []


def resolve_agent_path(name: str) -> Path:
    path = pretrained_dir() / f"{name}.zip"
    if not path.is_file():
        known = ", ".join(shipped_agents()) or "none"
        raise AgentFileError(f"no shipped agent named {name!r} in {pretrained_dir()}; shipped: {known}")
    return path


def model_card(path: Path) -> dict | None:
    card = path.with_suffix(".json")
    return json.loads(card.read_text()) if card.is_file() else None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_agent(path: Path) -> DqnAgent:
    """Load an agent file, checking it against its model card when one sits beside it."""
    card = model_card(path)
    if card is not None and card.get("agent_sha256") not in (None, file_sha256(path)):
        raise AgentFileError(f"{path} does not match the SHA-256 in its model card {path.with_suffix('.json')}")
    agent = load_agent_file(path)
    agent.name = f"agent:{path.stem}"
    return agent
