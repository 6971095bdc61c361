"""Drift scenarios: TOML files of phases (count, scene transform, severity, backend change) and their image streams.

A replay sends a scenario's images through the daemon in order, so the stream must be the same on every run
(everything flows from the scenario's `seed`) and cheap to start (images decode only when a replay asks).
The format is documented in `docs/scenarios.md`; the built-ins live in `builtin_scenarios/`.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from adacompress.cloud_backends.registry import backend_names
from adacompress.envs.drift import SEVERITIES, TRANSFORMS, make_transform
from adacompress.errors import AdaCompressError
from adacompress.images import AugmentedImageSet, ImageSet

_BUILTIN_FOLDER = "builtin_scenarios"
_TOP_LEVEL_KEYS = ("name", "description", "seed", "phases")


class ScenarioError(AdaCompressError, ValueError):
    """A scenario that cannot be replayed; the message names the file, line, phase and field to fix."""

    code = "bad_scenario"

    def __init__(self, problem: str, *, field: str | None = None, source: str | None = None,
                 line: int | None = None, phase: int | None = None) -> None:
        self.problem, self.field, self.source, self.line, self.phase = problem, field, source, line, phase
        where = [source, line and f"line {line}", phase and f"phase {phase}"]
        super().__init__(", ".join(part for part in where if part) + f": {problem}" if any(where) else problem)

    def at(self, source: str, line: int | None = None, phase: int | None = None) -> ScenarioError:
        """The same problem, located in a file (a phase's own checks do not know where they were written)."""
        return ScenarioError(self.problem, field=self.field, source=source, line=line, phase=phase)


@dataclass(frozen=True)
class Phase:
    """A stretch of the stream: `images` photos, all passed through one scene transform."""

    name: str
    """Shown in the timeline and the plot."""
    images: int
    """How many images the phase sends (the folder is cycled, with seeded crops, if it has fewer)."""
    transform: str = "none"
    """A name from `adacompress.envs.drift.TRANSFORMS`."""
    severity: int = 3
    """1 (mild) to 5 (severe)."""
    backend: str | None = None
    """A backend spec (`local:lite0`) the provider switches to for this phase; None keeps the replay's `--backend`."""

    def __post_init__(self) -> None:
        _expect(self.name, str, "name", "a string")
        _expect(self.images, int, "images", "an integer")
        if self.images < 1:
            raise ScenarioError(f"images = {self.images}; a phase needs at least 1 image", field="images")
        _expect(self.transform, str, "transform", "a string")
        if self.transform not in TRANSFORMS:
            raise ScenarioError(f"transform = {self.transform!r} is unknown; use one of {', '.join(TRANSFORMS)}",
                                field="transform")
        _expect(self.severity, int, "severity", "an integer")
        if self.severity not in SEVERITIES:
            raise ScenarioError(f"severity = {self.severity} is out of range; use {SEVERITIES.start} (mild) "
                                f"to {SEVERITIES.stop - 1} (severe)", field="severity")
        if self.backend is not None:
            _expect(self.backend, str, "backend", 'a backend spec such as "local:lite0"')
            if self.backend.partition(":")[0] not in backend_names():
                raise ScenarioError(f"backend = {self.backend!r} is unknown; use one of {', '.join(backend_names())} "
                                    "(with an optional :variant)", field="backend")


@dataclass(frozen=True)
class Scenario:
    """Phases replayed one after another; `seed` fixes the image order, the crops and the transforms' noise."""

    name: str
    description: str
    seed: int
    phases: tuple[Phase, ...] = field(default=())

    def __post_init__(self) -> None:
        _expect(self.name, str, "name", "a string")
        _expect(self.description, str, "description", "a string")
        _expect(self.seed, int, "seed", "a non-negative integer")
        if self.seed < 0:
            raise ScenarioError(f"seed = {self.seed}; use a non-negative integer", field="seed")
        object.__setattr__(self, "phases", tuple(self.phases))
        if not self.phases:
            raise ScenarioError("no phases; add at least one [[phases]] table with `images = N`", field="phases")
        seen: dict[str, int] = {}
        for number, phase in enumerate(self.phases, start=1):
            # A replay's timeline and summary group images by phase name.
            if phase.name in seen:
                raise ScenarioError(f"name = {phase.name!r} is already phase {seen[phase.name]}'s; give each phase "
                                    "its own name", field="name", phase=number)
            seen[phase.name] = number

    @property
    def total_images(self) -> int:
        return sum(phase.images for phase in self.phases)


def _expect(value: object, kind: type, key: str, what: str) -> None:
    # bool is an int subclass, but `images = true` is a mistake, not a count of one.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ScenarioError(f"{key} must be {what}, got {type(value).__name__} {value!r}", field=key)


def builtin_scenarios() -> list[str]:
    """Names `load_scenario` accepts besides file paths."""
    folder = resources.files(__package__) / _BUILTIN_FOLDER
    return sorted(entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml"))


def load_scenario(source: str | Path) -> Scenario:
    """Read a scenario from a TOML file or a built-in name; any defect raises `ScenarioError` saying where."""
    path = Path(source)
    if path.is_file():
        return parse_scenario(path.read_text(encoding="utf-8"), f"scenario file {path}", default_name=path.stem)
    if isinstance(source, str) and source in builtin_scenarios():
        text = (resources.files(__package__) / _BUILTIN_FOLDER / f"{source}.toml").read_text(encoding="utf-8")
        return parse_scenario(text, f"built-in scenario {source!r}", default_name=source)
    raise ScenarioError(f"no scenario file {str(source)!r} and no built-in of that name; "
                        f"give a TOML file or one of {', '.join(builtin_scenarios())}", source=str(source))


def parse_scenario(text: str, source: str = "scenario", default_name: str = "scenario") -> Scenario:
    """Build a scenario from TOML text; `source` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        raise ScenarioError(f"not valid TOML: {exc} (see docs/scenarios.md for the format)",
                            source=source, line=int(match[1]) if match else None) from None
    lines = _Lines(text)
    unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ScenarioError(_unknown_keys(unknown, _TOP_LEVEL_KEYS), field=unknown[0], source=source,
                            line=lines.find(unknown[0]))
    tables = data.get("phases", [])
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise ScenarioError("phases must be an array of tables: write each phase as a [[phases]] table",
                            field="phases", source=source, line=lines.find("phases"))
    phases = tuple(_phase(table, number, source, lines) for number, table in enumerate(tables, start=1))
    try:
        return Scenario(data.get("name", default_name), data.get("description", ""), data.get("seed", 0), phases)
    except ScenarioError as exc:
        raise exc.at(source, lines.find(exc.field, exc.phase), exc.phase) from None


def _phase(table: dict, number: int, source: str, lines: _Lines) -> Phase:
    allowed = tuple(f.name for f in fields(Phase))
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ScenarioError(_unknown_keys(unknown, allowed), field=unknown[0], source=source,
                            line=lines.find(unknown[0], number), phase=number)
    if "images" not in table:
        raise ScenarioError("images is missing; say how many images the phase sends (images = 300)",
                            field="images", source=source, line=lines.find(None, number), phase=number)
    try:
        return Phase(**{"name": f"phase-{number}", **table})
    except ScenarioError as exc:
        raise exc.at(source, lines.find(exc.field, number), number) from None


def _unknown_keys(unknown: list[str], allowed: tuple[str, ...]) -> str:
    return f"unknown key {', '.join(map(repr, unknown))}; allowed keys are {', '.join(allowed)}"


class _Lines:
    """Where keys were written: tomllib returns values without positions, so errors look the key up in the text."""

    _HEADER = re.compile(r"\s*\[")
    _PHASE_HEADER = re.compile(r"\s*\[\[\s*phases\s*\]\]")

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        headers = [i for i, line in enumerate(self._lines) if self._HEADER.match(line)]
        self._top_end = headers[0] if headers else len(self._lines)
        self._phases = [i for i in headers if self._PHASE_HEADER.match(self._lines[i])]
        self._ends = {start: next((h for h in headers if h > start), len(self._lines)) for start in self._phases}

    def find(self, key: str | None, phase: int | None = None) -> int | None:
        """1-based line of `key` at the top level or in the phase-th [[phases]] table (its header when the key is
        absent); None when it cannot be told (phases written inline, a missing top-level key)."""
        if phase is None:
            start, end = 0, self._top_end
        elif phase <= len(self._phases):
            start = self._phases[phase - 1]
            end = self._ends[start]
        else:
            return None
        hit = None
        if key:
            assignment = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=")
            hit = next((i for i in range(start, end) if assignment.match(self._lines[i])), None)
            if hit is None and phase is None:
                header = re.compile(rf"\s*\[+\s*{re.escape(key)}\s*\]")
                hit = next((i for i, line in enumerate(self._lines) if header.match(line)), None)
        if hit is None and phase is not None:
            hit = start
        return None if hit is None else hit + 1


@dataclass(frozen=True)
class StreamItem:
    """One image of a replay, in order; `load()` decodes it, crops it if this is a later cycle and applies the
    phase's transform."""

    position: int
    """0-based place in the whole stream (also the transform's `index`)."""
    phase_index: int
    """0-based index into `scenario.phases`."""
    phase: Phase
    image_index: int
    """Index of the source photo in the image set."""
    view: int
    """0 for the photo itself; k >= 1 for its k-th seeded crop (the k-th pass over the folder)."""
    name: str
    """The photo's name, with `#viewK` for a crop."""
    load: Callable[[], Image.Image] = field(repr=False, compare=False)


def scenario_stream(scenario: Scenario, images: ImageSet) -> Iterator[StreamItem]:
    """The images a replay sends, lazily: a fresh seeded order over the folder on every pass, continuing across
    phases (a later phase shows other photos where the folder allows); passes after the first send seeded
    crops (`AugmentedImageSet`), so no image repeats exactly."""
    count = len(images)
    crops = AugmentedImageSet(images, views=math.ceil(scenario.total_images / count) - 1, seed=scenario.seed)
    position = 0
    order: np.ndarray = np.empty(0, dtype=int)
    for phase_index, phase in enumerate(scenario.phases):
        transform = make_transform(phase.transform, phase.severity, seed=scenario.seed)
        for _ in range(phase.images):
            view, offset = divmod(position, count)
            if offset == 0:
                order = np.random.default_rng([scenario.seed, view]).permutation(count)
            image_index = int(order[offset])
            crop_index = image_index * (crops.views + 1) + view
            yield StreamItem(position, phase_index, phase, image_index, view, crops.name(crop_index),
                             _loader(crops, crop_index, transform, position))
            position += 1


def _loader(crops: AugmentedImageSet, crop_index: int, transform: Callable[..., Image.Image],
            position: int) -> Callable[[], Image.Image]:
    return lambda: transform(crops.load(crop_index), index=position)
