"""The upload proxy on a real uvicorn server on loopback: uploads, auth, bad input, overload, upstream errors,
readiness with Redis going away, metrics, decision workers in processes, and two serve processes following
one registry.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from _proxy_server import ALWAYS, NEVER, free_port, jpeg, make_service, running
from PIL import Image

from adacompress.agents.policies import load_policy
from adacompress.cloud_backends.base import Recognition
from adacompress.cloud_backends.fakes import make_fake
from adacompress.cloud_backends.local import LocalBackend
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import Action, encode
from adacompress.service.assemble import ServeOptions
from adacompress.service.proxy import ProxyConfig
from adacompress.service.registry import Registry
from adacompress.service.store import RedisStore
from adacompress.upload import Upload
from tests.conftest import constant_screen, with_screen


class RecordingBackend(LocalBackend):
    """Lite0 that keeps the bytes it receives, and blocks while `gate` is clear."""

    def __init__(self) -> None:
        super().__init__("lite0")
        self.received: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        self.gate.wait(30)
        self.received.append(image_bytes)
        return super().recognize(image_bytes, use_cache=use_cache)


def test_a_raw_upload_is_served_compressed_and_answered_with_what_was_sent(photos):
    backend = RecordingBackend()
    body = jpeg(photos[0])
    with running(make_service(backend=backend)) as url:
        answer = httpx.post(f"{url}/v1/recognize", content=body, timeout=30).json()
    sent = encode(Image.open(io.BytesIO(body)), Action("jpeg", 10)).data
    assert backend.received == [sent]
    assert answer["action"] == "jpeg:10" and answer["bytes_sent"] == len(sent) and answer["bytes_in"] == len(body)
    assert (answer["estimated"], answer["policy_version"], answer["backend"]) == (False, "fixed:10", "local:lite0")
    assert [label["name"] for label in answer["labels"]] == list(LocalBackend("lite0").recognize(sent).names)
    assert answer["reference_bytes"] > answer["bytes_sent"]


def test_multipart_and_raw_uploads_get_the_same_answer(photos):
    body = jpeg(photos[1])
    with running(make_service()) as url:
        raw = httpx.post(f"{url}/v1/recognize", content=body, timeout=30).json()
        form = httpx.post(f"{url}/v1/recognize", files={"image": ("p.jpg", body, "image/jpeg")}, timeout=30).json()
        missing = httpx.post(f"{url}/v1/recognize", files={"photo": ("p.jpg", body, "image/jpeg")}, timeout=30)
    assert raw == form
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_image"


def test_the_learned_policy_serves_through_the_daemon_and_estimates_return_the_reference_answer(photos):
    service = make_service(ServeOptions(backend="local:lite0", workers=0), rules=ALWAYS)
    with running(service) as url:
        answers = [httpx.post(f"{url}/v1/recognize", content=jpeg(p), timeout=60).json() for p in photos[:3]]
    reference = [LocalBackend("lite0").recognize(encode(Image.open(io.BytesIO(jpeg(p))), Action("jpeg", 75)).data)
                 for p in photos[:3]]
    assert all(a["estimated"] for a in answers)
    assert [[label["name"] for label in a["labels"]] for a in answers] == [list(r.names) for r in reference]
    assert service.daemon.state.estimates == 3 and service.daemon.state.transitions == 3


@pytest.mark.parametrize("api_key", [None, "s3cret-token"])
def test_client_auth_when_a_key_is_set(photos, api_key):
    body = jpeg(photos[2])
    with running(make_service(config=ProxyConfig(api_key=api_key))) as url:
        bare = httpx.post(f"{url}/v1/recognize", content=body, timeout=30)
        wrong = httpx.post(f"{url}/v1/recognize", content=body, headers={"Authorization": "Bearer nope"}, timeout=30)
        right = httpx.post(f"{url}/v1/recognize", content=body,
                           headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
        health = httpx.get(f"{url}/healthz")
    assert right.status_code == 200 and health.status_code == 200
    if api_key is None:
        assert bare.status_code == wrong.status_code == 200
    else:
        assert bare.status_code == wrong.status_code == 401
        assert bare.json()["error"]["code"] == "unauthorized" and api_key not in bare.text


def test_bad_input_gets_a_clear_error_and_nothing_is_sent(photos):
    backend = RecordingBackend()
    good = jpeg(photos[0])
    huge_header = jpeg(Image.new("RGB", (64, 64)))
    # A JPEG whose header claims 30000 x 30000 pixels: refused from the header, before decoding.
    marker = huge_header.index(b"\xff\xc0") + 5
    huge_header = huge_header[:marker] + (30000).to_bytes(2, "big") * 2 + huge_header[marker + 4:]
    with running(make_service(config=ProxyConfig(max_upload_bytes=200_000), backend=backend)) as url:
        replies = {name: httpx.post(f"{url}/v1/recognize", content=body, timeout=30) for name, body in {
            "text": b"this is not an image", "truncated": good[: len(good) // 2], "empty": b"",
            "too_big": os.urandom(300_000), "too_many_pixels": huge_header}.items()}
    codes = {name: (reply.status_code, reply.json()["error"]["code"]) for name, reply in replies.items()}
    assert codes == {"text": (400, "not_an_image"), "truncated": (400, "truncated_image"),
                     "empty": (400, "missing_image"), "too_big": (413, "upload_too_large"),
                     "too_many_pixels": (413, "too_many_pixels")}
    assert backend.received == []


def test_a_full_queue_answers_503_with_retry_after(photos):
    backend = RecordingBackend()
    backend.gate.clear()
    body = jpeg(photos[0])
    with running(make_service(config=ProxyConfig(max_in_flight=1), backend=backend)) as url:
        first: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: first.append(httpx.post(f"{url}/v1/recognize", content=body,
                                                                            timeout=30)))
        waiting.start()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/v1/status").json()["in_flight"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        refused = httpx.post(f"{url}/v1/recognize", content=body, timeout=30)
        backend.gate.set()
        waiting.join(30)
        metrics = httpx.get(f"{url}/metrics").text
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert first[0].status_code == 200
    assert "adacompress_rejected_total 1.0" in metrics


def test_upstream_throttling_maps_to_429_and_bad_upstream_credentials_to_502(photos, monkeypatch):
    fake = make_fake("rekognition").start()
    try:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        backend = create_backend("rekognition", cache="off", qps=None, max_attempts=1, deadline_s=10.0)
        with running(make_service(backend=backend)) as url:
            fake.faults.throttle_next = 1
            fake.faults.retry_after_s = 7
            throttled = httpx.post(f"{url}/v1/recognize", content=jpeg(photos[0]), timeout=30)
            fake.faults.bad_credentials = True
            refused = httpx.post(f"{url}/v1/recognize", content=jpeg(photos[0]), timeout=30)
            fake.faults.bad_credentials = False
            fine = httpx.post(f"{url}/v1/recognize", content=jpeg(photos[0]), timeout=30)
    finally:
        fake.stop()
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "throttled"
    assert int(throttled.headers["retry-after"]) >= 1
    assert refused.status_code == 502 and "credentials" in refused.json()["error"]["message"]
    assert fine.status_code == 200 and fine.json()["labels"]


def test_readiness_says_when_the_upstream_endpoint_is_down(photos, monkeypatch):
    fake = make_fake("rekognition").start()
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    backend = create_backend("rekognition", cache="off", qps=None, max_attempts=1, deadline_s=5.0)
    with running(make_service(backend=backend)) as url:
        up = httpx.get(f"{url}/readyz")
        fake.stop()
        down = httpx.get(f"{url}/readyz")
    assert (up.status_code, up.json()["backend"]) == (200, True)
    assert (down.status_code, down.json()["backend"]) == (503, False)


def test_readiness_follows_redis(redis_server, prefix, photos):
    store = RedisStore(redis_server.url, prefix=prefix)
    with running(make_service(store=store)) as url:
        assert httpx.get(f"{url}/readyz").json()["ready"] is True
        redis_server.stop()
        down = httpx.get(f"{url}/readyz")
        served = httpx.post(f"{url}/v1/recognize", content=jpeg(photos[0]), timeout=30)
        redis_server.start()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again after Redis came back"
            time.sleep(0.1)
    assert down.status_code == 503 and down.json()["store"] is False
    assert served.status_code == 200  # Redis away costs readiness, not answers


def test_metrics_count_uploads_and_bytes(photos):
    bodies = [jpeg(p) for p in photos[:2]]
    with running(make_service()) as url:
        answers = [httpx.post(f"{url}/v1/recognize", content=body, timeout=30).json() for body in bodies]
        text = httpx.get(f"{url}/metrics").text
        status = httpx.get(f"{url}/v1/status").json()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("adacompress_") and " " in line}
    assert values['adacompress_uploads_total{mode="inference",route="v1"}'] == 2
    assert values["adacompress_bytes_in_total"] == sum(len(b) for b in bodies)
    assert values["adacompress_bytes_sent_total"] == sum(a["bytes_sent"] for a in answers)
    assert values["adacompress_bytes_saved_total"] == sum(a["reference_bytes"] - a["bytes_sent"] for a in answers)
    assert status["daemon"]["requests"] == 2 and status["policy_version"] == "fixed:10"
    assert values['adacompress_policy_info{version="fixed:10"}'] == 1


def test_an_early_exit_decided_in_a_worker_is_counted_and_its_estimate_learns_the_whole_probe(tmp_path, photos):
    shipped = load_policy("pretrained:local-lite2")
    agent_path = with_screen(shipped.agent, constant_screen(0.999)).save(tmp_path / "screened.zip")
    body = jpeg(photos[0])
    service = make_service(ServeOptions(backend="local:lite0", policy=str(agent_path), workers=1), rules=ALWAYS)
    with running(service) as url:
        answer = httpx.post(f"{url}/v1/recognize", content=body, timeout=120).json()
        text = httpx.get(f"{url}/metrics").text
    assert (answer["action"], answer["estimated"]) == ("jpeg:5", True)
    assert "adacompress_early_exits_total 1.0" in text.splitlines()
    buffer = service.daemon.buffer
    assert buffer is not None and buffer.flush()
    (transition,) = buffer.read()
    expected = service.daemon.policy.observe(Upload.of(body, defer_full_decode=False))
    assert transition.observation.tobytes() == expected.astype("<f4").tobytes()


def test_decisions_in_a_worker_process_match_decisions_in_process(photos):
    body = jpeg(photos[3])
    service = make_service(ServeOptions(backend="local:lite0", workers=1), rules=NEVER)
    with running(service) as url:
        answer = httpx.post(f"{url}/v1/recognize", content=body, timeout=120).json()
    expected = service.daemon.policy.decide(body)
    assert (answer["action"], answer["bytes_sent"]) == (expected.action.label, expected.bytes)
    assert answer["policy_version"] == expected.policy_version


def test_two_serve_processes_on_one_redis_swap_to_a_published_policy_together(redis_server, prefix, make_agent,
                                                                              tmp_path):
    store = RedisStore(redis_server.url, prefix=prefix)
    registry = Registry(store)
    first = make_agent(1)
    registry.set_current(registry.publish(first.to_bytes()))
    ports = [free_port(), free_port()]
    env = {**os.environ, "ADACOMPRESS_REDIS_URL": redis_server.url, "ADACOMPRESS_REDIS_PREFIX": prefix}
    processes = [subprocess.Popen([sys.executable, "-m", "adacompress.cli", "-v", "serve", "--backend", "local:lite0",
                                   "--workers", "0", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"serve-{port}.log", "wb"))
                 for port in ports]
    try:
        def versions() -> list[str | None]:
            found = []
            for port in ports:
                try:
                    found.append(httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=2).json()["policy_version"])
                except httpx.HTTPError:
                    found.append(None)
            return found

        assert _until(lambda: versions() == [first.version] * 2, 90), versions()
        second = make_agent(2)
        registry.set_current(registry.publish(second.to_bytes()))
        started = time.monotonic()
        assert _until(lambda: versions() == [second.version] * 2, 10), versions()
        assert time.monotonic() - started < 5
    finally:
        for process in processes:
            process.terminate()
        # uvicorn drains, shuts down, then re-raises the SIGTERM it caught: -15 after a graceful stop
        codes = [process.wait(30) for process in processes]
    logs = [(tmp_path / f"serve-{port}.log").read_text() for port in ports]
    assert codes == [-signal.SIGTERM] * 2
    assert all("Traceback" not in log and '"event": "proxy_stopping"' in log for log in logs), logs


def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_passthrough_forwards_the_bytes_as_sent(photos):
    backend = RecordingBackend()
    body = jpeg(photos[0])
    with running(make_service(config=ProxyConfig(passthrough=True), backend=backend)) as url:
        answer = httpx.post(f"{url}/v1/recognize", content=body, timeout=30).json()
    assert backend.received == [body]
    assert (answer["action"], answer["bytes_sent"], answer["estimated"]) == ("as-sent", len(body), False)


def test_serve_learn_runs_the_learner_beside_the_daemon_until_the_service_closes():
    def learners() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "adacompress-learner" and t.is_alive()]

    before = len(learners())
    service = make_service(ServeOptions(backend="local:lite0", workers=0, learn=True, learn_interval_s=0.05))
    assert len(learners()) == before + 1
    service.close()
    assert len(learners()) == before


def test_a_request_past_its_deadline_answers_504(photos):
    backend = RecordingBackend()
    backend.gate.clear()  # the upstream never answers in time
    with running(make_service(config=ProxyConfig(request_timeout_s=0.5), backend=backend)) as url:
        late = httpx.post(f"{url}/v1/recognize", content=jpeg(photos[0]), timeout=30)
        backend.gate.set()
    assert late.status_code == 504 and late.json()["error"]["code"] == "deadline_exceeded"
