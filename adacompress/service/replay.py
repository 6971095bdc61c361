"""Replay a drift scenario through the daemon and say what happened: timeline, summary, plot.

Each rule set gets its own run over the same stream: a daemon (in process, with its own embedded store,
registry and, for learned policies, a learner stepped every `learn_every` images so retraining happens
inside the stream), or a running proxy (`--proxy URL`, whose daemon and rules are its own). Every image is
also scored offline against its own reference answer under that phase's backend, whether or not the
daemon estimated it: the summary's accuracy is the truth, the daemon's estimate is what it believed.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adacompress.agents.policies import LearnedPolicy, policy_from_spec
from adacompress.agents.replay_buffer import TransitionBuffer
from adacompress.cloud_backends.base import Label, Recognition, VisionBackend
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, encode
from adacompress.envs.scenarios import Scenario, scenario_stream
from adacompress.errors import AdaCompressError
from adacompress.images import ImageSet
from adacompress.scoring import Scoring
from adacompress.service.daemon import Daemon
from adacompress.service.registry import Registry
from adacompress.service.rules import rules_from_name
from adacompress.service.store import EmbeddedStore

log = logging.getLogger(__name__)

RECOVERY_WINDOW = 50
"""Images in the rolling accuracy that `images_to_recover` watches."""
RECOVERY_TOLERANCE = 0.05
"""How close (share of answers) to its level before a change the rolling accuracy must come back."""


class ReplayError(AdaCompressError, ValueError):
    code = "bad_replay"


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay: the default backend (phases may change it), the policy, the rule sets, learning."""

    backend: str = "local"
    policy: str = "pretrained:local-lite2"
    rules: tuple[str, ...] = ("adacompress", "paper")
    target_accuracy: float | None = None
    learn: bool = True
    """Retrain inside the stream (learned policies, in process only)."""
    learn_every: int = 100
    """Images between learner steps."""
    seed: int = 0
    proxy: str | None = None
    """A running proxy's base URL: replay through it instead of an in-process daemon."""


def upload_bytes(image: Image.Image) -> bytes:
    """What a client sends for a frame: a q=90 JPEG, as cameras and browsers save them."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class _Backends:
    """One backend per spec, built when first needed (the provider-swap phase builds the second)."""

    def __init__(self) -> None:
        self._made: dict[str, VisionBackend] = {}

    def __call__(self, spec: str) -> VisionBackend:
        if spec not in self._made:
            self._made[spec] = create_backend(spec)
        return self._made[spec]


def replay(scenario: Scenario, images: ImageSet, options: ReplayOptions,
           on_image: Callable[[str, int], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The timeline of each rule set (`{rules: [row per image]}`); `on_image(rules, position)` after each."""
    if options.proxy and any(phase.backend for phase in scenario.phases):
        raise ReplayError(f"scenario {scenario.name!r} changes the backend mid-stream, which only an in-process "
                          "replay can do; drop --proxy, or use a scenario without backend changes")
    backends = _Backends()
    runs = (["proxy"] if options.proxy else list(options.rules))
    return {name: _run(name, scenario, images, options, backends, on_image) for name in runs}


def _run(name: str, scenario: Scenario, images: ImageSet, options: ReplayOptions, backends: _Backends,
         on_image: Callable[[str, int], None] | None) -> list[dict[str, Any]]:
    scoring = Scoring()
    serve = (_through_proxy(options.proxy) if options.proxy
             else _in_process(name, options, backends, scoring))
    rows = []
    for item in scenario_stream(scenario, images):
        backend = backends(item.phase.backend or options.backend)
        image = item.load()
        data = upload_bytes(image)
        row = serve(data, backend, item.position)
        truth = backend.recognize(encode(image, REFERENCE_ACTION).data)
        answer = Recognition(tuple(Label(n, s) for n, s in row.pop("labels")), {}, 0.0, row["bytes"])
        rows.append({"position": item.position, "phase": item.phase.name, "image": item.name,
                     **row, "hit": scoring.hit(truth, answer)})
        if on_image is not None:
            on_image(name, item.position)
    return rows


def _in_process(rules_name: str, options: ReplayOptions, backends: _Backends, scoring: Scoring):
    store = EmbeddedStore(f"replay-{rules_name}:")
    registry = Registry(store)
    policy = policy_from_spec(options.policy, DEFAULT_LADDER)
    learned = isinstance(policy, LearnedPolicy)
    if learned:
        registry.set_current(registry.publish(policy.agent.to_bytes()))
        scoring = policy.scoring
    rules = rules_from_name(rules_name, options.target_accuracy if rules_name == "adacompress" else None)
    daemon = Daemon(policy, backends(options.backend), scoring, TransitionBuffer(store), rules, options.seed)
    learner = _learner(store, registry) if learned and options.learn else None

    def serve(data: bytes, backend: VisionBackend, position: int) -> dict[str, Any]:
        daemon.backend = backend
        served = daemon.handle(data)
        event = None
        if learner is not None and position and position % options.learn_every == 0:
            result = learner.step()
            if result is not None:
                event = "retrained" if result.published else "retrain_rejected"
                if result.published:
                    daemon.set_policy(registry.current()[1])
        state = daemon.state
        return {"labels": [(label.name, label.score) for label in served.recognition.labels],
                "action": served.decision.action.label, "bytes": served.decision.bytes,
                "reference_bytes": served.reference_bytes, "estimated": served.mode == "estimate",
                "mode": state.mode, "p_est": round(served.p_est, 6), "policy_version": served.policy_version,
                "size_weight": state.size_weight, "event": event}
    return serve


def _learner(store, registry):
    """A learner that retrains only when the daemon asks: the stream is too short for unasked retrains to
    validate on enough real uploads (a few dozen), and a candidate that passes on so few can serve worse."""
    import torch

    from adacompress.agents.learner import Learner, LearnerConfig

    torch.set_num_threads(1)
    return Learner(store, registry, config=LearnerConfig(min_new_transitions=sys.maxsize, min_transitions=50))


def _through_proxy(url: str):
    import httpx

    client = httpx.Client(base_url=url.rstrip("/"), timeout=120)

    def serve(data: bytes, backend: VisionBackend, position: int) -> dict[str, Any]:
        reply = client.post("/v1/recognize", content=data)
        if reply.status_code != 200:
            raise ReplayError(f"the proxy at {url} answered {reply.status_code}: {reply.text[:200]}")
        answer = reply.json()
        status = client.get("/v1/status").json()["daemon"]
        return {"labels": [(label["name"], label["score"]) for label in answer["labels"]],
                "action": answer["action"], "bytes": answer["bytes_sent"],
                "reference_bytes": answer["reference_bytes"], "estimated": answer["estimated"],
                "mode": status["mode"], "p_est": status["p_est"], "policy_version": answer["policy_version"],
                "size_weight": status["size_weight"], "event": None}
    return serve


def summarize(scenario: Scenario, timelines: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per rule set and phase: bytes, accuracy (offline truth), estimate overhead, retrains, recovery."""
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "accuracy": "every image is scored offline against its own reference answer under its phase's backend, "
                    "whether or not the daemon estimated it",
        "images_to_recover": f"images after a phase change until the rolling accuracy over the last "
                             f"{RECOVERY_WINDOW} images of the new phase is within {RECOVERY_TOLERANCE:.0%} of its "
                             f"level over the {RECOVERY_WINDOW} images before the change (at least "
                             f"{RECOVERY_WINDOW}; null if it never is)",
        "rules": {}}
    for name, rows in timelines.items():
        phases = []
        for phase in scenario.phases:
            mine = [row for row in rows if row["phase"] == phase.name]
            start = rows.index(mine[0]) if mine else 0
            phases.append({"phase": phase.name, **_phase_summary(mine),
                           "images_to_recover": _recovery(rows, start) if start else None})
        result["rules"][name] = {"whole": _phase_summary(rows), "phases": phases}
    return result


def _phase_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {"images": 0}
    reference = sum(row["reference_bytes"] for row in rows)
    estimated = [row for row in rows if row["estimated"]]
    return {"images": len(rows), "accuracy": round(float(np.mean([row["hit"] for row in rows])), 6),
            "bytes_vs_reference": round(sum(row["bytes"] for row in rows) / reference, 6),
            "estimate_calls_overhead": round(len(estimated) / len(rows), 6),
            "estimate_bytes_overhead": round(sum(row["reference_bytes"] for row in estimated) / reference, 6),
            "retrains": sum(row["event"] == "retrained" for row in rows),
            "retrain_mode_images": sum(row["mode"] == "retrain" for row in rows)}


def _recovery(rows: list[dict[str, Any]], change: int) -> int | None:
    hits = np.array([row["hit"] for row in rows], dtype=float)
    level = hits[max(0, change - RECOVERY_WINDOW):change].mean()
    for end in range(change + RECOVERY_WINDOW, len(hits) + 1):
        if hits[end - RECOVERY_WINDOW:end].mean() >= level - RECOVERY_TOLERANCE:
            return end - change
    return None


def write_outputs(scenario: Scenario, timelines: dict[str, list[dict[str, Any]]], out: Path) -> dict[str, Any]:
    """timeline.jsonl, summary.json and timeline.png under `out`; the summary."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "timeline.jsonl", "w") as file:
        for name, rows in timelines.items():
            for row in rows:
                file.write(json.dumps({"rules": name, **row}) + "\n")
    summary = summarize(scenario, timelines)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(scenario, timelines, out / "timeline.png")
    return summary


def plot(scenario: Scenario, timelines: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Rolling accuracy and bytes over the stream for each rule set; phase changes and retrains marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name, rows in timelines.items():
        positions = [row["position"] for row in rows]
        top.plot(positions, _rolling([row["hit"] for row in rows]), label=f"{name} accuracy")
        bottom.plot(positions, _rolling([row["bytes"] / row["reference_bytes"] for row in rows]),
                    label=f"{name} bytes / reference")
        for row in rows:
            if row["event"] == "retrained":
                top.axvline(row["position"], color="gray", linestyle=":", linewidth=0.8)
    for boundary in _boundaries(scenario):
        for axis in (top, bottom):
            axis.axvline(boundary, color="black", linewidth=1)
    top.set_ylabel(f"accuracy (rolling {RECOVERY_WINDOW})")
    bottom.set_ylabel("bytes / q=75 bytes")
    bottom.set_xlabel("image")
    top.set_title(f"{scenario.name}: phases {', '.join(p.name for p in scenario.phases)}; dotted: retrained")
    top.legend(loc="lower left")
    bottom.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _rolling(values: Iterable[float]) -> list[float]:
    array = np.asarray(list(values), dtype=float)
    sums = np.cumsum(np.insert(array, 0, 0.0))
    return [(sums[i + 1] - sums[max(0, i + 1 - RECOVERY_WINDOW)]) / min(i + 1, RECOVERY_WINDOW)
            for i in range(len(array))]


def _boundaries(scenario: Scenario) -> list[int]:
    edges, position = [], 0
    for phase in scenario.phases[:-1]:
        position += phase.images
        edges.append(position)
    return edges
