"""Shipped agents: `NAME.zip` with its model card `NAME.json`, package data of `adacompress/pretrained/`.

They are found through `importlib.resources`, so `pretrained:NAME` works from a wheel or a zip
install as well as from a source tree; `ADACOMPRESS_PRETRAINED_DIR` points at another folder.
The card records the agent file's SHA-256, and loading refuses a file that does not match it.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from adacompress.agents.agent_file import AgentFile, AgentFileError
from adacompress.config import settings


def pretrained_dir() -> Traversable:
    """`ADACOMPRESS_PRETRAINED_DIR`, else the agents shipped inside the package."""
    override = settings().pretrained_dir
    return override if override is not None else resources.files("adacompress") / "pretrained"


def shipped_agents() -> list[str]:
    folder = pretrained_dir()
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(".zip")] for entry in folder.iterdir() if entry.name.endswith(".zip"))


def _entry(name: str, suffix: str) -> Traversable:
    return pretrained_dir() / f"{name}{suffix}"


def model_card(name: str) -> dict | None:
    card = _entry(name, ".json")
    return json.loads(card.read_text()) if card.is_file() else None


def pretrained_bytes(name: str) -> bytes:
    """The agent file's bytes, checked against its model card's SHA-256."""
    entry = _entry(name, ".zip")
    if not entry.is_file():
        known = ", ".join(shipped_agents()) or "none"
        override = settings().pretrained_dir
        if override is not None:
            raise AgentFileError(f"no agent named {name!r} in ADACOMPRESS_PRETRAINED_DIR ({override}); "
                                 f"it holds: {known}")
        raise AgentFileError(f"no shipped agent named {name!r}; shipped: {known}")
    data = entry.read_bytes()
    card = model_card(name)
    if card is not None and card.get("agent_sha256") not in (None, hashlib.sha256(data).hexdigest()):
        raise AgentFileError(f"pretrained agent {name!r} does not match the SHA-256 in its model card")
    return data


def load_pretrained(name: str) -> AgentFile:
    return AgentFile.from_bytes(pretrained_bytes(name), f"pretrained:{name}")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
