"""Policies: per image, which rung of the ladder to upload.

`fixed:Q`, `random` and `oracle` are the baselines; `pretrained:NAME` or a path loads a trained
agent. The oracle reads every action's outcome, so it is a benchmark bound, not a deployable policy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image

from adacompress.codec import Action, Ladder
from adacompress.errors import AdaCompressError
from adacompress.outcomes import OutcomeTable


class PolicyError(AdaCompressError, ValueError):
    code = "bad_policy"


class Policy(ABC):
    """Chooses a ladder index for image `index` of an outcome table."""

    name: str
    needs_features = False
    """Whether `choose` reads the observation (the evaluator only embeds images when it does)."""

    @abstractmethod
    def choose(self, table: OutcomeTable, index: int, observation: np.ndarray | None = None) -> int:
        """Return the ladder index to upload image `index` at."""

    def action_for(self, image: Image.Image) -> Action:
        """The action for a new image, without any backend call (what a deployment runs)."""
        raise PolicyError(f"{self.name} needs the backend's answers for every action; it cannot run on new images")


class FixedPolicy(Policy):
    """Always the same action: the baseline every learned policy has to beat."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.name = f"fixed:{action.quality}" if action.codec == "jpeg" else f"fixed:{action.label}"

    def choose(self, table: OutcomeTable, index: int, observation: np.ndarray | None = None) -> int:
        try:
            return table.ladder.actions.index(self.action)
        except ValueError:
            raise PolicyError(f"{self.name} is not on the ladder {table.ladder.spec}") from None

    def action_for(self, image: Image.Image) -> Action:
        return self.action


class RandomPolicy(Policy):
    """Uniform over the ladder, seeded."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def choose(self, table: OutcomeTable, index: int, observation: np.ndarray | None = None) -> int:
        return int(self._rng.integers(len(table.ladder)))


class OraclePolicy(Policy):
    """Per image, the cheapest action that still hits; needs every action's answer.

    `codec` restricts it to one codec's rungs (the JPEG oracle bounds any policy on the JPEG ladder).
    """

    def __init__(self, codec: str | None = None) -> None:
        self.codec = codec
        self.name = f"oracle:{codec}" if codec else "oracle"

    def choose(self, table: OutcomeTable, index: int, observation: np.ndarray | None = None) -> int:
        sizes = table.sizes(index)
        allowed = [a for a, action in enumerate(table.ladder.actions) if self.codec in (None, action.codec)]
        by_size = sorted(allowed, key=sizes.__getitem__)
        for action_index in by_size:
            if table.outcome(index, action_index).hit:
                return action_index
        return by_size[-1]


def policy_from_spec(spec: str, ladder: Ladder, seed: int = 0) -> Policy:
    """`fixed:Q` (JPEG quality) or `fixed:codec:Q`, `random`, `oracle`, `pretrained:NAME`, or an agent file."""
    kind, _, arg = spec.partition(":")
    if kind == "fixed":
        codec, _, quality = arg.rpartition(":")
        try:
            return FixedPolicy(Action(codec or "jpeg", int(quality)))
        except ValueError as exc:
            raise PolicyError(f"policy {spec!r}: expected fixed:QUALITY, e.g. fixed:15") from exc
    if kind == "random":
        return RandomPolicy(seed)
    if kind == "oracle":
        return OraclePolicy()
    from adacompress.agents.pretrained import load_agent, resolve_agent_path

    if kind == "pretrained":
        return load_agent(resolve_agent_path(arg))
    if Path(spec).suffix == ".zip" or Path(spec).exists():
        return load_agent(Path(spec))
    raise PolicyError(f"unknown policy {spec!r}; use fixed:Q, random, oracle, pretrained:NAME or an agent .zip")
