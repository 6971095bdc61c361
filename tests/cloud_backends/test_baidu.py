"""Baidu specifics: the OAuth token's life cycle, error codes in 200 bodies, the free tier's 2 QPS."""

from __future__ import annotations

import time

import pytest

from adacompress.cloud_backends.baidu import map_error
from adacompress.cloud_backends.base import AuthError, BackendError, BackendUnavailable, QuotaExhausted, Throttled
from adacompress.cloud_backends.breaker import DailyQuotaExhausted
from adacompress.cloud_backends.cost import layers
from adacompress.cloud_backends.registry import create_backend
from adacompress.errors import BadImage, ImageTooSmall, NotAnImage, UnsupportedFormat

pytestmark = pytest.mark.parametrize("provider", ["baidu"], indirect=True)


def test_token_is_fetched_once_and_reused(provider, fake, make_backend, images):
    backend = make_backend()
    for seed in range(3):
        backend.recognize(images.jpeg(seed))
    assert fake.token_requests == 1
    assert fake.calls == 3


@pytest.mark.parametrize("invalidate", ["expire_tokens", "revoke_tokens"])
def test_expired_or_revoked_token_is_refreshed_once(provider, fake, make_backend, images, invalidate):
    backend = make_backend()
    backend.recognize(images.jpeg())
    getattr(fake, invalidate)()  # the next call answers 111 (expired) or 110 (invalid)
    assert backend.recognize(images.jpeg(1)).labels
    assert fake.token_requests == 2


def test_refused_refresh_is_an_auth_error_after_one_try(provider, fake, make_backend, images):
    backend = make_backend()
    backend.recognize(images.jpeg())
    fake.faults.bad_credentials = True  # tokens answer 110 and the token endpoint refuses the keys
    with pytest.raises(AuthError, match="token endpoint refused the keys .*BAIDU_API_KEY"):
        backend.recognize(images.jpeg(1))
    assert fake.token_requests == 2, "one refresh, not a retry loop"


@pytest.mark.parametrize("fake_options", [{"token_ttl_s": 31}])
def test_token_is_renewed_before_it_expires(provider, fake, make_backend, images):
    backend = make_backend()
    backend.recognize(images.jpeg())
    time.sleep(1.05)  # expires_in 31 s minus the 30 s safety margin
    backend.recognize(images.jpeg(1))
    assert fake.token_requests == 2
    assert fake.calls == 2, "renewed ahead of time: no call was answered 111"


@pytest.mark.parametrize("fake_options", [{"token_scope": "public wise_adapt"}])
def test_token_without_brain_all_scope_is_refused(provider, fake, make_backend, images):
    with pytest.raises(AuthError, match="brain_all_scope"):
        make_backend().recognize(images.jpeg())
    assert fake.calls == 0


def test_free_tier_pace_is_the_default(provider, fake, images):
    backend = create_backend("baidu", cache="off")
    try:
        started = time.monotonic()
        for seed in range(3):
            backend.recognize(images.jpeg(seed))
        assert time.monotonic() - started >= 0.95  # 2 QPS: 0.5 s between calls
    finally:
        backend.close()


def test_qps_env_overrides_the_default(provider, fake, monkeypatch):
    monkeypatch.setenv("BAIDU_QPS", "10")
    backend = create_backend("baidu", cache="off")
    assert layers(backend)[1].policy.qps == 10.0
    assert layers(create_backend("baidu", cache="off", qps=3))[1].policy.qps == 3.0


@pytest.mark.parametrize(("code", "expected"), [
    (17, DailyQuotaExhausted), (19, QuotaExhausted), (4, Throttled), (18, Throttled), (1, BackendUnavailable),
    (2, BackendUnavailable), (282000, BackendUnavailable), (216630, BackendUnavailable),
    (216400, BackendUnavailable), (216401, BackendUnavailable), (216500, BackendUnavailable),
    (282001, BackendUnavailable), (15, BackendUnavailable), (6, AuthError),
    (14, AuthError), (100, AuthError), (110, AuthError), (111, AuthError), (216200, NotAnImage),
    (216201, UnsupportedFormat), (216202, BadImage), (3, BackendError),
])
def test_error_codes_map_to_typed_errors(provider, code, expected):
    error = map_error({"error_code": code, "error_msg": "message from Baidu"})
    assert type(error) is expected
    assert f"error_code {code}" in str(error)


def test_daily_quota_resets_at_midnight_beijing(provider):
    error = map_error({"error_code": 17, "error_msg": "Open api daily request limit reached"})
    hours_left = (error.reset_at - time.time()) / 3600
    assert 0 < hours_left <= 24
    assert time.gmtime(error.reset_at).tm_hour == 16 and time.gmtime(error.reset_at).tm_min == 0  # 00:00 UTC+8


@pytest.mark.parametrize("code", [216400, 216401, 216500, 282001, 15])
def test_server_side_errors_are_retried(provider, fake, make_backend, images, code):
    fake.internal_error_code, fake.faults.fail_next = code, 1
    assert make_backend().recognize(images.jpeg()).labels
    assert fake.calls == 2


@pytest.mark.parametrize(("size", "why"), [((16, 16), "15 px is the documented minimum"),
                                           ((480, 120), "no aspect-ratio cap is documented for the API")])
def test_documented_sizes_are_sent_and_answered(provider, fake, make_backend, images, size, why):
    assert make_backend().recognize(images.jpeg(size=size)).bytes_sent, why
    assert fake.answered == 1


def test_below_15_px_fails_before_upload(provider, fake, make_backend, images):
    with pytest.raises(ImageTooSmall, match=r"14x14 px; each side must be at least 15 px"):
        make_backend().recognize(images.jpeg(size=(14, 14)))
    assert fake.requests == 0
