"""Policies: per upload, which rung of the ladder to send, as one call, `decide(upload) -> Decision`.

`fixed:Q` and `random` are the baselines; `pretrained:NAME` or an agent file is a learned policy
(a numpy MLP over the agent's observation; no torch at inference). The per-image oracle reads
every rung's answer, so it is an evaluation bound (`adacompress.evaluation`), not a policy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from adacompress.agents.agent_file import AgentFile
from adacompress.agents.pretrained import load_pretrained
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.agents.screen import can_screen, screen_columns
from adacompress.codec import REFERENCE_ACTION, Action, Ladder
from adacompress.errors import AdaCompressError
from adacompress.features import Featurizer, ProbeFeaturizer, ends_with_size_ratios, make_featurizer
from adacompress.images import DecodeLimits
from adacompress.rate import estimate_bytes
from adacompress.upload import Upload


class PolicyError(AdaCompressError, ValueError):
    code = "bad_policy"


@dataclass(frozen=True)
class Decision:
    """What to send for one upload, and everything the caller and the daemon need to know about it."""

    action: Action
    rung: int
    """Index of `action` in the policy's ladder."""
    observation: np.ndarray | None
    """What the policy saw (None for policies that look at nothing, and for an early exit: `agents/screen.py`); the
    daemon's transitions keep it."""
    data: bytes
    """The upload encoded at `action`: exactly these bytes go to the backend."""
    reference_bytes: int
    """Estimated size of the reference upload (what the client would have sent), from a reduced copy."""
    policy_version: str
    hit_probability: float | None = None
    """The policy's own belief that the chosen rung keeps the answer (None if it has none)."""
    exited_early: bool = False
    """The screen sent the cheapest rung after two of the probe's passes (`agents/screen.py`); `observation` is
    then None, and the daemon completes it if the request becomes an estimate."""

    @property
    def bytes(self) -> int:
        return len(self.data)


class Choice(NamedTuple):
    """What `_choose` decided: the rung, the observation it was chosen from, the believed chance it keeps the answer,
    and whether the screen chose it before the whole observation existed."""

    rung: int
    observation: np.ndarray | None = None
    hit_probability: float | None = None
    exited_early: bool = False


class Policy(ABC):
    """Chooses a rung of its ladder for each upload."""

    name: str
    version: str

    def __init__(self, ladder: Ladder, reference: Action = REFERENCE_ACTION,
                 limits: DecodeLimits | None = None) -> None:
        self.ladder = ladder
        self.reference = reference
        self.limits = limits if limits is not None else DecodeLimits.from_settings()  # ADACOMPRESS_MAX_*

    size_weight: float | None = None
    """The known-cost head's weight on bytes against accuracy, if the policy has that dial (else None)."""

    def decide(self, upload: bytes | Image.Image | Upload, size_weight: float | None = None,
               min_rung: int = 0) -> Decision:
        """Choose, encode the chosen rung at full size, and say what was chosen and why.

        `size_weight` turns the dial for this call (lower keeps more answers, at more bytes); a policy
        without the dial refuses it rather than ignore it. `min_rung` is the daemon's quality floor, for when the
        dial alone cannot hold the accuracy: the choice keeps to `ladder.at_floor(min_rung)`.
        """
        upload = self.upload_of(upload)
        if size_weight is not None and self.size_weight is None:
            raise PolicyError(f"policy {self.name} has no size weight to turn; only agents with the known-cost "
                              "head do")
        choice = self._choose(upload, size_weight, self.ladder.at_floor(min_rung))
        action = self.ladder[choice.rung]
        return Decision(action, choice.rung, choice.observation, upload.encoded(action).data,
                        estimate_bytes(upload, self.reference), self.version, choice.hit_probability,
                        choice.exited_early)

    def observe(self, upload: Upload) -> np.ndarray | None:
        """What this policy's decisions look at (None for policies that look at nothing)."""
        return None

    def upload_of(self, upload: bytes | Image.Image | Upload) -> Upload:
        """The upload as this policy reads it: under its decode limits, decoded at full size at once when every rung
        of its ladder will need the full-size pixels anyway."""
        return Upload.of(upload, self.limits, defer_full_decode=self.ladder.has_size_caps)

    @abstractmethod
    def _choose(self, upload: Upload, size_weight: float | None, allowed: tuple[int, ...]) -> Choice:
        """The rung (one of `allowed`) for `upload`, and why."""


class FixedPolicy(Policy):
    """Always the same action: the baseline every learned policy has to beat."""

    def __init__(self, action: Action, reference: Action = REFERENCE_ACTION) -> None:
        super().__init__(Ladder((action,)), reference)
        self.action = action
        self.name = self.version = self.spec_for(action)

    @staticmethod
    def spec_for(action: Action) -> str:
        """`fixed:25` for a plain JPEG quality, else `fixed:LABEL` (`fixed:webp:30`, `fixed:jpeg:25@256`)."""
        plain = action.codec == "jpeg" and not action.short_side
        return f"fixed:{action.quality}" if plain else f"fixed:{action.label}"

    def _choose(self, upload: Upload, size_weight: float | None, allowed: tuple[int, ...]) -> Choice:
        return Choice(0)


class RandomPolicy(Policy):
    """Uniform over the ladder, seeded."""

    def __init__(self, ladder: Ladder, seed: int = 0, reference: Action = REFERENCE_ACTION) -> None:
        super().__init__(ladder, reference)
        self.name, self.version = "random", f"random:{seed}"
        self._rng = np.random.default_rng(seed)

    def _choose(self, upload: Upload, size_weight: float | None, allowed: tuple[int, ...]) -> Choice:
        return Choice(allowed[int(self._rng.integers(len(allowed)))])


class LearnedPolicy(Policy):
    """A trained agent: its featurizer's observation through its Q-network; the highest Q wins."""

    def __init__(self, agent: AgentFile, name: str = "agent") -> None:
        super().__init__(agent.ladder, agent.reference)
        self.agent = agent
        self.name = name
        self.version = agent.version
        self.scoring = agent.scoring
        self.featurizer: Featurizer = make_featurizer(agent.config.featurizer, agent.ladder)
        if self.featurizer.dim != agent.observation_dim:
            raise PolicyError(f"{name}: featurizer {agent.config.featurizer} gives {self.featurizer.dim} numbers, "
                              f"the agent expects {agent.observation_dim}")
        self.q_network = NumpyQNetwork(agent)
        if agent.config.head == "known-cost":
            self.size_weight = agent.config.size_weight
        self.screen = agent.screen() if can_screen(agent.config.head, agent.ladder, self.featurizer) else None
        """The early exit (`adacompress.agents.screen`), where the agent has one and it can be sure."""

    def size_ratios(self, observation: np.ndarray) -> np.ndarray | None:
        """Every rung's estimated size ratio, read off an observation of this policy's (None if it has none)."""
        if not ends_with_size_ratios(self.agent.config.featurizer):
            return None
        return np.asarray(observation[-len(self.ladder):], dtype=np.float64)

    def observe(self, upload: Upload) -> np.ndarray:
        return self.featurizer.observe(upload)

    def _choose(self, upload: Upload, size_weight: float | None, allowed: tuple[int, ...]) -> Choice:
        first = None
        if self.screen is not None and allowed[0] == 0:
            assert isinstance(self.featurizer, ProbeFeaturizer) and self.size_weight is not None
            first = self.featurizer.first_look(upload)
            inputs = first.partial[screen_columns(self.featurizer.rungs)]
            probability = self.screen.hit_probability(inputs)
            if self.screen.exits(probability, self.size_weight if size_weight is None else size_weight,
                                 (float(inputs[-2]), float(inputs[-1]))):
                return Choice(0, None, probability, exited_early=True)
        observation = self.featurizer.observe(upload, first)
        rung = allowed[int(self.q_network(observation, size_weight)[0, list(allowed)].argmax())]
        probabilities = self.q_network.hit_probabilities(observation)
        return Choice(rung, observation, None if probabilities is None else float(probabilities[0, rung]))


def load_policy(source: str | Path | bytes, name: str | None = None) -> LearnedPolicy:
    """A learned policy from agent-file bytes, a path, or `pretrained:NAME`."""
    if isinstance(source, bytes):
        return LearnedPolicy(AgentFile.from_bytes(source), name or "agent")
    text = str(source)
    if text.startswith("pretrained:"):
        agent_name = text.partition(":")[2]
        return LearnedPolicy(load_pretrained(agent_name), name or f"agent:{agent_name}")
    path = Path(text)
    return LearnedPolicy(AgentFile.read(path), name or f"agent:{path.stem}")


def policy_from_spec(spec: str, ladder: Ladder, seed: int = 0) -> Policy:
    """`fixed:Q` (JPEG quality), `fixed:codec:Q[@SHORT_SIDE]`, `random`, `pretrained:NAME`, or an agent file."""
    kind, _, arg = spec.partition(":")
    if kind == "fixed":
        try:
            return FixedPolicy(Action.parse(arg))
        except ValueError as exc:
            raise PolicyError(f"policy {spec!r}: expected fixed:QUALITY, e.g. fixed:15 or fixed:jpeg:25@256 "
                              f"({exc})") from exc
    if kind == "random":
        return RandomPolicy(ladder, seed)
    if kind == "oracle":
        raise PolicyError("the oracle needs every rung's answer from the backend, so it cannot decide for a new "
                          "upload; use it as a bound in `eval` or `bench`")
    if kind == "pretrained" or Path(spec).suffix == ".zip" or Path(spec).exists():
        return load_policy(spec)
    raise PolicyError(f"unknown policy {spec!r}; use fixed:Q, random, pretrained:NAME or an agent .zip")
