"""The daemon: estimates at rate p_est, the reference served in estimates, transitions, the paper's rules, failures.

Real parts throughout: the Lite0 CNN on onnxruntime as the backend (a subclass that records what reaches
it), the bundled photos, real JPEG encodes, and the replay buffer on Redis and on the embedded store.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from PIL import Image

from adacompress import upload as upload_module
from adacompress.agents.policies import FixedPolicy, LearnedPolicy, PolicyError, load_policy
from adacompress.agents.replay_buffer import TransitionBuffer
from adacompress.cloud_backends.base import BackendUnavailable, Recognition
from adacompress.cloud_backends.local import LocalBackend
from adacompress.cnn import EfficientNetLite
from adacompress.codec import REFERENCE_ACTION, Action, encode
from adacompress.errors import BadImage
from adacompress.scoring import Scoring
from adacompress.service.daemon import Daemon, Served
from adacompress.service.registry import Registry
from adacompress.service.rules import PaperRules, TargetRules
from adacompress.service.store import EmbeddedStore, RedisStore, Store
from adacompress.upload import Upload
from tests.conftest import constant_screen, with_screen

Q1, Q10, Q95 = (FixedPolicy(Action("jpeg", q)) for q in (1, 10, 95))
ALWAYS, NEVER = PaperRules(p_est_floor=1.0, p_est_ceiling=1.0), PaperRules(p_est_floor=0.0, p_est_ceiling=0.0)


class RecordingBackend(LocalBackend):
    """Lite0 that records every upload it receives (bytes, use_cache) and fails the uploads `fails` picks."""

    def __init__(self, fails: Callable[[bool], bool] = lambda use_cache: False) -> None:
        super().__init__("lite0")
        self.fails = fails
        self.received: list[tuple[bytes, bool]] = []
        self._lock = threading.Lock()

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        with self._lock:
            self.received.append((image_bytes, use_cache))
        if self.fails(use_cache):
            raise BackendUnavailable(f"injected failure (use_cache={use_cache})")
        return super().recognize(image_bytes, use_cache=use_cache)


@pytest.fixture(scope="module")
def small_photos(photos: list[Image.Image]) -> list[Image.Image]:
    return [photo.resize((224, 224)) for photo in photos]


@pytest.fixture(scope="module")
def verdicts(small_photos: list[Image.Image]) -> dict[int, dict[int, bool]]:
    """quality -> photo index -> whether JPEG at that quality keeps the q=75 reference's answer on Lite0."""
    backend, scoring = LocalBackend("lite0"), Scoring()
    result: dict[int, dict[int, bool]] = {}
    for quality in (1, 10, 95):
        result[quality] = {}
        for i, photo in enumerate(small_photos):
            reference = backend.recognize(encode(photo, REFERENCE_ACTION).data)
            result[quality][i] = scoring.hit(reference, backend.recognize(encode(photo, Action("jpeg", quality)).data))
    return result


@pytest.fixture(scope="module")
def hitting(small_photos, verdicts) -> list[Image.Image]:
    """Photos whose answer survives both q=10 and q=95."""
    kept = [p for i, p in enumerate(small_photos) if verdicts[10][i] and verdicts[95][i]]
    assert len(kept) >= 5, f"only {len(kept)} photos keep their answer at q=10 and q=95"
    return kept


@pytest.fixture(scope="module")
def failing(small_photos, verdicts) -> list[Image.Image]:
    """Photos whose answer changes at q=1."""
    lost = [p for i, p in enumerate(small_photos) if not verdicts[1][i]]
    assert len(lost) >= 5, f"only {len(lost)} photos change their answer at q=1"
    return lost


def serve(daemon: Daemon, images: list[Image.Image], count: int) -> list[Served]:
    return [daemon.handle(images[i % len(images)]) for i in range(count)]


def serve_until(daemon: Daemon, images: list[Image.Image], done: Callable[[Served], bool],
                limit: int = 400) -> list[Served]:
    """Serve `images` round robin until `done(served)` holds; fails if it never does within `limit` requests."""
    served = []
    for i in range(limit):
        served.append(daemon.handle(images[i % len(images)]))
        if done(served[-1]):
            return served
    raise AssertionError(f"condition not reached in {limit} requests; state {daemon.state.to_json()}")


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict]:
    parsed = [json.loads(r.getMessage()) for r in caplog.records if r.name == "adacompress.service.daemon"]
    return [e for e in parsed if e["event"] == name]


def test_estimates_happen_at_rate_p_est_and_the_seed_fixes_the_sequence(hitting):
    pinned = PaperRules(p_est_floor=0.2, p_est_ceiling=0.2)
    backend = RecordingBackend()
    daemon = Daemon(Q10, backend, Scoring(), None, pinned, seed=0)
    modes = [s.mode for s in serve(daemon, hitting, 200)]
    estimates = modes.count("estimate")
    assert 17 <= estimates <= 63  # 200 draws at 0.2: mean 40, four standard deviations (5.7) either side
    state = daemon.state
    assert (state.requests, state.estimates, len(backend.received)) == (200, estimates, 200 + estimates)
    again = [s.mode for s in serve(Daemon(Q10, LocalBackend("lite0"), Scoring(), None, pinned, seed=0), hitting, 60)]
    other = [s.mode for s in serve(Daemon(Q10, LocalBackend("lite0"), Scoring(), None, pinned, seed=1), hitting, 60)]
    assert again == modes[:60]
    assert other != modes[:60]


def test_an_estimate_uploads_the_reference_uncached_and_serves_its_answer(failing, monkeypatch):
    encodes: Counter = Counter()
    real_encode = upload_module.encode

    def counting_encode(image, action):
        encodes[id(image), action] += 1
        return real_encode(image, action)

    monkeypatch.setattr(upload_module, "encode", counting_encode)
    photo = failing[0]
    backend = RecordingBackend()
    served = Daemon(Q1, backend, Scoring(), None, ALWAYS).handle(photo)
    reference = encode(photo, REFERENCE_ACTION).data
    # Both uploads go out at once, so they may arrive in either order.
    received = sorted(backend.received, key=lambda r: r[1], reverse=True)
    assert received == [(served.decision.data, True), (reference, False)]
    assert served.decision.data == encode(photo, Action("jpeg", 1)).data
    assert (served.mode, served.estimated, served.hit, served.reference_bytes) == ("estimate", True, False,
                                                                                   len(reference))
    truth = LocalBackend("lite0")
    assert served.recognition.names == truth.recognize(reference).names
    assert served.recognition.top1 != truth.recognize(served.decision.data).top1
    assert max(encodes.values()) == 1, f"an action was encoded twice for one image: {encodes}"


def test_an_inference_uploads_exactly_the_decision(failing):
    photo = failing[0]
    backend = RecordingBackend()
    served = Daemon(Q1, backend, Scoring(), None, NEVER).handle(photo)
    assert backend.received == [(served.decision.data, True)]
    assert (served.mode, served.estimated, served.hit) == ("inference", False, None)
    assert served.recognition.names == LocalBackend("lite0").recognize(served.decision.data).names
    assert served.recognition.top1 != LocalBackend("lite0").recognize(encode(photo, REFERENCE_ACTION).data).top1


def test_each_estimate_adds_one_transition_with_its_fields(store: Store, small_photos):
    policy = load_policy("pretrained:local-lite2")
    buffer = TransitionBuffer(store)
    daemon = Daemon(policy, RecordingBackend(), Scoring(), buffer, PaperRules(p_est_floor=0.5, p_est_ceiling=0.5))
    served = serve(daemon, small_photos, 12)
    estimated = [s for s in served if s.estimated]
    assert 0 < len(estimated) < 12
    assert buffer.flush()
    transitions = buffer.read()
    assert len(transitions) == len(estimated) == daemon.state.transitions
    for transition, s in zip(transitions, estimated, strict=True):
        assert (transition.rung, transition.hit, transition.policy_version) == (s.decision.rung, s.hit,
                                                                                policy.version)
        assert (transition.bytes_sent, transition.reference_bytes) == (s.decision.bytes, s.reference_bytes)
        assert transition.size_ratio == pytest.approx(s.decision.bytes / s.reference_bytes)
        assert transition.observation.tobytes() == s.decision.observation.astype("<f4").tobytes()


def test_an_early_exit_that_becomes_an_estimate_records_what_the_whole_probe_sees(store: Store, small_photos):
    shipped = load_policy("pretrained:local-lite2")
    policy = LearnedPolicy(with_screen(shipped.agent, constant_screen(0.999)))
    buffer = TransitionBuffer(store)
    served = Daemon(policy, RecordingBackend(), Scoring(), buffer, ALWAYS).handle(small_photos[0])
    assert (served.estimated, served.decision.rung) == (True, 0)
    assert buffer.flush()
    (transition,) = buffer.read()  # the paper's rules learn from the uploaded rung alone
    expected = policy.observe(Upload(small_photos[0]))
    assert transition.observation.tobytes() == expected.astype("<f4").tobytes()
    assert (transition.rung, transition.bytes_sent) == (0, served.decision.bytes)


def test_an_early_exit_is_probed_whole_only_when_a_buffer_will_learn_from_it(small_photos, monkeypatch):
    shipped = load_policy("pretrained:local-lite2")
    policy = LearnedPolicy(with_screen(shipped.agent, constant_screen(0.999)))
    shown: list[int] = []
    real_run = EfficientNetLite.run
    surrogate = policy.featurizer._model  # the backend's Lite0 runs too; count only what the probe shows

    def counting_run(model: EfficientNetLite, images: list[Image.Image]):
        if model is surrogate:
            shown.append(len(images))
        return real_run(model, images)

    monkeypatch.setattr(EfficientNetLite, "run", counting_run)
    served = Daemon(policy, RecordingBackend(), Scoring(), None, ALWAYS).handle(small_photos[0])
    assert (served.estimated, served.decision.exited_early) == (True, True)
    assert sum(shown) == 2  # the first look only: with no buffer, nothing would keep the rest


def test_a_policy_without_observations_estimates_but_records_no_transitions(hitting):
    buffer = TransitionBuffer(EmbeddedStore("daemon-fixed:"))
    daemon = Daemon(Q10, RecordingBackend(), Scoring(), buffer, ALWAYS)
    serve(daemon, hitting, 5)
    state = daemon.state
    assert (state.estimates, state.transitions, buffer.added, len(state.hits)) == (5, 0, 0, 5)


def test_falling_accuracy_raises_p_est_and_requests_retraining(hitting, failing, caplog):
    caplog.set_level(logging.INFO, "adacompress.service.daemon")
    daemon = Daemon(Q10, RecordingBackend(), Scoring(), None, PaperRules())
    served = serve_until(daemon, hitting, lambda s: daemon.state.scored > 12)
    assert {s.p_est for s in served} == {0.2}
    assert daemon.state.recent_accuracy == 1.0
    daemon.policy = Q1  # drift: the answers start to change
    serve_until(daemon, failing, lambda s: s.estimated)
    assert daemon.state.p_est == pytest.approx(0.2 + 3 * 0.1)  # the paper: p_est -= 3 * d(accuracy)
    serve_until(daemon, failing, lambda s: daemon.state.retrain_requested)
    state = daemon.state
    assert state.recent_accuracy < 0.8 and state.p_est == pytest.approx(0.95)
    assert (state.mode, state.retrain_requests) == ("retrain", 1)
    [event] = events(caplog, "retrain_requested")
    assert event["recent_accuracy"] == state.recent_accuracy and event["mode"] == "retrain"
    assert all(s.mode == "estimate" for s in serve(daemon, failing, 5))  # retraining labels every request


def test_a_policy_that_always_hits_stays_at_the_floor(hitting):
    daemon = Daemon(Q10, RecordingBackend(), Scoring(), None, PaperRules())
    served = serve_until(daemon, hitting, lambda s: daemon.state.scored >= 25)
    state = daemon.state
    assert {s.p_est for s in served} == {0.2} and all(s.hit for s in served if s.estimated)
    assert (state.mode, state.retrain_requested, state.retrain_requests) == ("inference", False, 0)


def test_retraining_stops_when_reward_and_accuracy_recover(hitting, failing, caplog):
    caplog.set_level(logging.INFO, "adacompress.service.daemon")
    daemon = Daemon(Q1, RecordingBackend(), Scoring(), None, PaperRules(), seed=3)
    serve_until(daemon, failing, lambda s: daemon.state.retrain_requested)
    assert daemon.state.p_est == 0.2  # accuracy was low from the start, not falling: the paper's step is zero
    daemon.policy = Q95  # every answer kept, but at more bytes than the reference: reward stays low
    served = serve(daemon, hitting, 15)
    assert all(s.hit for s in served) and daemon.state.recent_accuracy == 1.0
    assert daemon.state.recent_reward < 0.45 and daemon.state.mode == "retrain"
    daemon.policy = Q10
    served = serve_until(daemon, hitting, lambda s: daemon.state.mode == "inference", limit=10)
    assert len(served) >= 5 and all(s.mode == "estimate" for s in served)
    state = daemon.state
    assert (state.retrain_requested, state.p_est, state.recent_accuracy, state.retrain_requests) == (False, 0.2,
                                                                                                     None, 1)
    [event] = events(caplog, "retrain_stopped")
    assert event["mode"] == "inference"


@pytest.mark.parametrize(("failing_upload", "served_from"), [("reference", "compressed"),
                                                             ("compressed", "reference"), ("both", None)])
def test_a_failed_half_of_an_estimate_serves_the_other_half_unscored(failing_upload, served_from, failing, caplog):
    fails = {"reference": lambda use_cache: not use_cache, "compressed": lambda use_cache: use_cache,
             "both": lambda use_cache: True}[failing_upload]
    photo = failing[0]
    buffer = TransitionBuffer(EmbeddedStore("daemon-failures:"))
    daemon = Daemon(load_policy("pretrained:local-lite2"), RecordingBackend(fails), Scoring(), buffer, ALWAYS)
    if served_from is None:
        with pytest.raises(BackendUnavailable):
            daemon.handle(photo)
        return
    served = daemon.handle(photo)
    truth = LocalBackend("lite0")
    expected = served.decision.data if served_from == "compressed" else encode(photo, REFERENCE_ACTION).data
    assert served.recognition.names == truth.recognize(expected).names
    assert (served.mode, served.estimated, served.hit) == ("estimate", False, None)
    state = daemon.state
    assert (state.estimates, state.estimate_failures, state.transitions, state.recent_accuracy) == (1, 1, 0, None)
    assert buffer.added == 0 and events(caplog, "estimate_failed")[0]["upload"] == failing_upload


def test_a_failed_inference_raises(failing):
    with pytest.raises(BackendUnavailable):
        Daemon(Q10, RecordingBackend(lambda use_cache: True), Scoring(), None, NEVER).handle(failing[0])


def test_a_bad_image_raises_before_anything_is_sent():
    backend = RecordingBackend()
    daemon = Daemon(Q10, backend, Scoring(), None, ALWAYS)
    with pytest.raises(BadImage):
        daemon.handle(b"this is not an image")
    assert backend.received == [] and daemon.state.requests == 0


def test_concurrent_requests_keep_consistent_counts(hitting):
    backend = RecordingBackend()
    daemon = Daemon(Q10, backend, Scoring(), None, PaperRules(p_est_floor=0.5, p_est_ceiling=0.5))
    results: list[list[Served]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=lambda out=out: out.extend(serve(daemon, hitting, 25))) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    served = [s for out in results for s in out]
    estimated = sum(s.mode == "estimate" for s in served)
    state = daemon.state
    assert len(served) == state.requests == 100
    assert state.estimates == estimated and 0 < estimated < 100
    assert len(backend.received) == 100 + estimated
    assert len(state.hits) == min(10, estimated) and state.recent_accuracy == 1.0
    assert json.loads(json.dumps(state.to_json()))["requests"] == 100


def test_a_retrain_request_and_its_end_reach_the_shared_state_the_learner_reads(hitting, failing):
    store = EmbeddedStore("daemon-shared:")
    daemon = Daemon(Q1, RecordingBackend(), Scoring(), TransitionBuffer(store), PaperRules(), seed=3)
    key = store.keys.daemon_state
    assert store.hget(key, "retrain_requested") is None  # nothing written while nothing changes
    serve_until(daemon, failing, lambda s: daemon.state.retrain_requested)
    assert (store.hget(key, "retrain_requested"), store.hget(key, "mode")) == (b"1", b"retrain")
    daemon.policy = Q10
    serve_until(daemon, hitting, lambda s: daemon.state.mode == "inference", limit=40)
    assert (store.hget(key, "retrain_requested"), store.hget(key, "mode")) == (b"0", b"inference")


ALL_ESTIMATES = TargetRules(p_est_alert=1.0, alert_requests=10_000, min_rate_share=1.0, drift=None)


def test_an_estimate_labels_every_rung_its_answer_implies(store: Store, small_photos):
    policy = load_policy("pretrained:local-lite2")
    buffer = TransitionBuffer(store)
    daemon = Daemon(policy, RecordingBackend(), Scoring(), buffer, ALL_ESTIMATES)
    served = serve(daemon, small_photos, 8)
    assert buffer.flush()
    transitions = buffer.read()
    assert len(transitions) == daemon.state.transitions
    n = len(policy.ladder)
    for s in served:
        mine = [t for t in transitions if t.observation.tobytes() == s.decision.observation.astype("<f4").tobytes()]
        uploaded = [t for t in mine if t.bytes_sent is not None]
        assert [(t.rung, t.hit, t.bytes_sent) for t in uploaded] == [(s.decision.rung, s.hit, s.decision.bytes)]
        implied = range(s.decision.rung + 1, n) if s.hit else range(s.decision.rung)
        assert sorted(t.rung for t in mine if t.bytes_sent is None) == list(implied)
        for t in mine:
            assert t.hit == s.hit and t.reference_bytes == s.reference_bytes
            if t.bytes_sent is None:  # never uploaded: the observation's size estimate for that rung
                assert t.size_ratio == pytest.approx(float(s.decision.observation[t.rung - n]))
    assert any(s.hit for s in served) and len(transitions) > len(served)


def test_the_dial_moves_the_learned_policy_and_a_policy_without_one_refuses_it(small_photos):
    policy = load_policy("pretrained:local-lite2")
    assert policy.size_weight == pytest.approx(policy.scoring.beta / policy.scoring.alpha)  # the reward's own trade
    rungs = [[policy.decide(photo, size_weight).rung for size_weight in (1000.0, policy.size_weight, 0.0)]
             for photo in small_photos]
    assert all(cheap <= own <= dear for cheap, own, dear in rungs)
    assert any(cheap < dear for cheap, _, dear in rungs) and all(cheap == 0 for cheap, _, _ in rungs)
    with pytest.raises(PolicyError, match="no size weight"):
        Q10.decide(small_photos[0], 0.1)


def test_the_daemon_decides_with_its_dial_and_loosens_it_while_every_answer_is_kept(hitting):
    policy = load_policy("pretrained:local-lite2")
    daemon = Daemon(policy, RecordingBackend(), Scoring(), None, ALL_ESTIMATES)
    weights = []
    for photo in hitting * 2:
        weight = daemon.state.size_weight
        served = daemon.handle(photo)
        weights.append(weight)
        assert served.decision.rung == policy.decide(photo, weight).rung
    own = policy.size_weight  # the agent's trained weight is where the dial starts
    assert weights[0] == pytest.approx(own) and weights == sorted(weights) and weights[-1] > weights[0]
    rise = ALL_ESTIMATES.dial_gain * (1 - ALL_ESTIMATES.target_accuracy)  # log step per kept answer
    assert daemon.state.size_weight == pytest.approx(own * math.exp(rise * len(weights)))


class BarrierBackend(RecordingBackend):
    """Answers only once two uploads are in flight together: a daemon that uploads one after the other stalls."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(2, timeout=20)

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        self.barrier.wait()
        return super().recognize(image_bytes, use_cache=use_cache)


def test_both_halves_of_an_estimate_are_uploaded_at_once(hitting):
    daemon = Daemon(Q10, BarrierBackend(), Scoring(), None, ALWAYS)
    served = daemon.handle(hitting[0])
    assert served.estimated and served.hit
    daemon.close()


def test_the_state_reaches_the_store_and_a_store_that_goes_away_costs_no_request(redis_server, prefix, hitting):
    store = RedisStore(redis_server.url, prefix=prefix)
    policy = load_policy("pretrained:local-lite2")
    daemon = Daemon(policy, RecordingBackend(), Scoring(), TransitionBuffer(store), ALL_ESTIMATES)
    serve(daemon, hitting, 3)
    shared = store.hgetall(store.keys.daemon_replica(daemon.replica))
    assert (shared["target_accuracy"], shared["mode"], shared["retrain_requested"]) == (b"0.98", b"inference", b"0")
    assert float(shared["size_weight"]) == pytest.approx(policy.size_weight)  # at the first request, before estimates
    assert 0 < store.client.pttl(store.keys.daemon_replica(daemon.replica)) <= 30_000  # a stopped replica's goes away
    assert store.hgetall(store.keys.daemon_state) == {}  # the learner's cue changes only with the mode
    redis_server.stop()
    served = serve(daemon, hitting, 3)
    assert all(s.estimated for s in served) and daemon.state.requests == 6


def test_a_published_policy_reaches_the_daemon_and_restarts_its_dial(store: Store, make_agent, hitting, wait_for):
    registry = Registry(store)
    first = make_agent(1)
    registry.set_current(registry.publish(first.to_bytes()))
    daemon = Daemon(Q10, RecordingBackend(), Scoring(), None, ALL_ESTIMATES)
    with registry.watch(poll_s=0.05, on_change=lambda version, policy: daemon.set_policy(policy)):
        assert daemon.policy.version == first.version
        serve(daemon, hitting, 3)
        assert len(daemon.state.hits) == 3 and daemon.state.size_weight != first.config.size_weight
        second = make_agent(2)
        registry.set_current(registry.publish(second.to_bytes()))
        assert wait_for(lambda: daemon.policy.version == second.version, 5.0)
    state = daemon.state
    assert (len(state.hits), state.size_weight) == (0, second.config.size_weight)
