"""Only the provider's documented answer is an answer: anything else is a typed error and is never cached."""

from __future__ import annotations

import pytest

from adacompress.cloud_backends.base import BackendError
from adacompress.errors import BadImage

FOREIGN_REPLIES = {
    "not-found": (404, '{"error": "not found"}'),
    "empty-object": (200, "{}"),
    "wrong-shape": (200, '{"result": "ok", "responses": "none", "objects": 3, "Labels": "none"}'),
}


@pytest.mark.parametrize("reply", FOREIGN_REPLIES.values(), ids=FOREIGN_REPLIES.keys())
def test_a_foreign_reply_is_an_error_and_is_not_cached(provider, fake, make_backend, images, tmp_path, reply):
    backend = make_backend(cache="disk", cache_dir=tmp_path, max_attempts=1)
    backend.recognize(images.jpeg(1))  # Baidu's token is fetched before the endpoint goes wrong
    fake.faults.foreign_reply = reply
    with pytest.raises(BackendError) as caught:
        backend.recognize(images.jpeg())
    assert caught.value.code == "unexpected_answer", caught.value
    assert not isinstance(caught.value, BadImage)
    assert f"HTTP {reply[0]}" in str(caught.value)
    fake.faults.foreign_reply = None
    calls = fake.calls
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == calls + 1, "the error was not cached as an answer"
    assert backend.stats.snapshot()["cache_hits"] == 0


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_a_foreign_reply_at_the_token_endpoint_is_not_called_a_key_problem(provider, fake, make_backend, images):
    fake.faults.foreign_reply = (404, '{"error": "not found"}')
    with pytest.raises(BackendError) as caught:
        make_backend().recognize(images.jpeg())
    assert caught.value.code == "unexpected_answer"
    assert "BAIDU_ENDPOINT" in str(caught.value)
