"""Behaviour every cloud backend shares, checked against each provider's fake over loopback HTTP."""

from __future__ import annotations

import time

import pytest

from adacompress.cloud_backends.base import AuthError, BackendUnavailable, QuotaExhausted, Throttled
from adacompress.cloud_backends.breaker import CircuitOpen
from adacompress.cloud_backends.cost import cost_report
from adacompress.cloud_backends.deadline import DeadlineExceeded
from adacompress.cloud_backends.limits import ImageLimits
from adacompress.errors import (
    BadImage,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TruncatedImage,
    UnsupportedFormat,
)

LIMIT_BYTES = {"rekognition": 5 * 2**20, "baidu": 3 * 2**20, "facepp": 2 * 2**20, "google": 20 * 2**20}
NAME_STYLE = {"rekognition": str.title, "baidu": str, "facepp": str, "google": str.title}


def test_success_maps_the_provider_labels(provider, fake, make_backend, images):
    backend = make_backend()
    data = images.jpeg()
    answer = backend.recognize(data)
    expected = [(NAME_STYLE[provider](name), score) for name, score in fake.labeler.labels(data)]
    assert answer.labels
    assert answer.top1 == expected[0][0]
    assert answer.labels[0].score == pytest.approx(expected[0][1], abs=1e-3)
    assert all(0.0 <= label.score <= 1.0 for label in answer.labels)
    assert list(answer.labels) == sorted(answer.labels, key=lambda lb: -lb.score)
    assert answer.bytes_sent == len(data)
    assert backend.name == provider
    assert fake.calls == 1 and backend.stats.calls == 1


def test_answers_change_with_the_image(provider, fake, make_backend, images):
    backend = make_backend()
    assert backend.recognize(images.jpeg(seed=0)).names != backend.recognize(images.jpeg(seed=2)).names


def test_throttling_is_retried_until_success(provider, fake, make_backend, images):
    fake.faults.throttle_next = 2
    backend = make_backend()
    answer = backend.recognize(images.jpeg())
    assert answer.labels
    assert fake.calls == 3
    report = cost_report(backend)
    assert (report.calls, report.attempts, report.retries, report.billable_calls) == (1, 3, 2, 1)


def test_server_errors_are_retried(provider, fake, make_backend, images):
    fake.faults.fail_next = 1
    assert make_backend().recognize(images.jpeg()).labels
    assert fake.calls == 2


def test_retries_stop_at_max_attempts(provider, fake, make_backend, images):
    fake.faults.throttle_next = 5
    backend = make_backend(max_attempts=3)
    with pytest.raises(Throttled) as caught:
        backend.recognize(images.jpeg())
    assert fake.calls == 3
    assert "gave up after 3 attempts" in " ".join(caught.value.__notes__)


@pytest.mark.parametrize("provider", ["rekognition", "facepp", "google"], indirect=True)  # Baidu sends none
def test_retry_after_is_honoured(provider, fake, make_backend, images):
    fake.faults.throttle_next, fake.faults.retry_after_s = 1, 0.6
    backend = make_backend()
    started = time.monotonic()
    backend.recognize(images.jpeg())
    assert time.monotonic() - started >= 0.6


def test_daily_quota_opens_the_breaker(provider, fake, make_backend, images):
    fake.faults.quota_exhausted = True
    backend = make_backend()
    with pytest.raises(QuotaExhausted) as first:
        backend.recognize(images.jpeg())
    assert not isinstance(first.value, CircuitOpen)
    assert fake.calls == 1, "a spent quota must not be retried"
    fake.faults.quota_exhausted = False  # even if the quota came back, the breaker holds until its time
    for seed in (1, 2):
        started = time.monotonic()
        with pytest.raises(CircuitOpen) as refused:
            backend.recognize(images.jpeg(seed))
        assert time.monotonic() - started < 0.1
        assert "circuit open until 20" in str(refused.value) and provider in str(refused.value)
        assert refused.value.until > time.time()
    assert fake.calls == 1, "the fake must see no call while the breaker is open"


@pytest.mark.parametrize("provider", ["rekognition", "facepp"], indirect=True)  # no known reset time
def test_breaker_lets_a_probe_through_after_its_time(provider, fake, make_backend, images):
    fake.faults.quota_exhausted = True
    backend = make_backend(quota_open_s=0.3)
    with pytest.raises(QuotaExhausted):
        backend.recognize(images.jpeg())
    fake.faults.quota_exhausted = False
    with pytest.raises(CircuitOpen):
        backend.recognize(images.jpeg())
    time.sleep(0.35)
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == 2


def test_daily_limit_counts_answered_calls(provider, fake, make_backend, images):
    fake.faults.daily_limit = 2
    backend = make_backend()
    backend.recognize(images.jpeg(0))
    backend.recognize(images.jpeg(1))
    with pytest.raises(QuotaExhausted):
        backend.recognize(images.jpeg(2))


def test_too_large_fails_before_upload(provider, fake, make_backend, images):
    oversized = images.jpeg() + b"\0" * LIMIT_BYTES[provider]  # decoders ignore trailing bytes; the limit does not
    with pytest.raises(ImageTooLarge, match=f"{provider}: image is .* bytes.*the limit is {LIMIT_BYTES[provider]:,}"):
        make_backend().recognize(oversized)
    assert fake.requests == 0


@pytest.mark.parametrize("kind", ["format", "garbage", "empty"])
def test_bad_format_fails_before_upload(provider, fake, make_backend, kind, images):
    data = {"format": images.encode(images.textured(), "PPM"), "garbage": b"this is not an image at all",
            "empty": b""}[kind]
    expected = UnsupportedFormat if kind == "format" else NotAnImage
    with pytest.raises(expected, match=provider):
        make_backend().recognize(data)
    assert fake.requests == 0


@pytest.mark.parametrize("provider", ["rekognition", "baidu", "facepp"], indirect=True)  # Google has no minimum
def test_too_small_fails_before_upload(provider, fake, make_backend, images):
    with pytest.raises(ImageTooSmall, match=r"12x12 px; each side must be at least \d+ px"):
        make_backend().recognize(images.jpeg(size=(12, 12)))
    assert fake.requests == 0


@pytest.mark.parametrize("provider", ["rekognition", "baidu", "facepp"], indirect=True)
def test_fake_enforces_the_same_limits(provider, fake, make_backend, images):
    """With the client's pre-check loosened, the fake itself rejects a too-small image, unretried."""
    loose = ImageLimits(max_bytes=2**30, formats=frozenset({"JPEG", "PNG"}))
    with pytest.raises(BadImage):
        make_backend(limits=loose).recognize(images.jpeg(size=(12, 12)))
    assert fake.calls <= 1, "a bad image is not retried"


def test_wrong_credentials_are_an_auth_error(provider, fake, make_backend, monkeypatch, images):
    wrong = {"rekognition": "AWS_SECRET_ACCESS_KEY", "baidu": "BAIDU_SECRET_KEY", "facepp": "FACEPP_API_SECRET",
             "google": "GOOGLE_VISION_API_KEY"}[provider]
    monkeypatch.setenv(wrong, "not-the-right-secret")
    with pytest.raises(AuthError):
        make_backend().recognize(images.jpeg())
    assert fake.calls == 0, "an auth failure is not retried and never reaches recognition"


def test_revoked_credentials_are_an_auth_error(provider, fake, make_backend, images):
    backend = make_backend()
    backend.recognize(images.jpeg())
    fake.faults.bad_credentials = True
    with pytest.raises(AuthError):
        backend.recognize(images.jpeg(1))


def test_missing_credentials_name_the_variable(provider, fake, make_backend, monkeypatch):
    var = {"rekognition": "AWS_ACCESS_KEY_ID", "baidu": "BAIDU_API_KEY", "facepp": "FACEPP_API_KEY",
           "google": "GOOGLE_VISION_API_KEY"}[provider]
    monkeypatch.delenv(var)
    with pytest.raises(AuthError, match=var):
        make_backend()


def test_slow_provider_respects_the_deadline(provider, fake, make_backend, images):
    fake.faults.delay_s = 4.0
    backend = make_backend(deadline_s=1.0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="1.0 s deadline"):
        backend.recognize(images.jpeg())
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.0 + 2.0
    assert fake.calls == 1


def test_read_timeout_is_retried_within_the_deadline(provider, fake, make_backend, images):
    fake.faults.delay_s = 0.8
    backend = make_backend(read_timeout_s=0.3, deadline_s=3.0, max_attempts=3)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        backend.recognize(images.jpeg())
    assert time.monotonic() - started < 3.0 + 2.0
    assert fake.calls >= 2, "a read timeout is transient: it is retried"


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_client_qps_limit_spaces_calls(provider, fake, make_backend, images):
    backend = make_backend(qps=5.0)
    started = time.monotonic()
    for seed in range(3):
        backend.recognize(images.jpeg(seed))
    assert time.monotonic() - started >= 0.38  # three calls at 5 QPS: two 0.2 s gaps


@pytest.mark.parametrize("provider", ["rekognition", "baidu"], indirect=True)
def test_fake_qps_limit_throttles_and_the_client_recovers(provider, fake, make_backend, images):
    fake.faults.qps_limit = 2
    backend = make_backend(base_delay_s=0.2, max_attempts=8)
    for seed in range(3):
        assert backend.recognize(images.jpeg(seed)).bytes_sent
    assert fake.answered == 3


@pytest.mark.parametrize("cut", ["tail", "half"])
def test_a_truncated_image_fails_before_upload(provider, fake, make_backend, images, cut):
    """The header alone is fine, so only a full decode sees that the pixels are missing."""
    data = images.jpeg(size=(320, 240))
    data = data[:-600] if cut == "tail" else data[: len(data) // 2]
    with pytest.raises(TruncatedImage, match=f"{provider}: .*truncated"):
        make_backend().recognize(data)
    assert fake.requests == 0
