"""Google specifics: per-image errors inside a 200, the 10 MB JSON limit, the formats Google accepts."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import pytest

from adacompress.cloud_backends.limits import GOOGLE_LIMITS
from adacompress.errors import BadImage, ImageTooLarge

pytestmark = pytest.mark.parametrize("provider", ["google"], indirect=True)


def test_per_image_error_in_a_200_is_a_bad_image(provider, fake, make_backend, images):
    truncated = images.jpeg(size=(320, 240))[:-600]  # the header is fine, the pixels are cut short
    header_only = dataclasses.replace(GOOGLE_LIMITS, decode_check=False)  # let it reach the fake
    with pytest.raises(BadImage, match="Bad image data"):
        make_backend(limits=header_only).recognize(truncated)
    assert fake.calls == 1, "a bad image is not retried"


def test_the_key_travels_in_a_header_not_the_url(provider, fake, make_backend, images, caplog):
    caplog.set_level(logging.INFO, logger="httpx")
    make_backend().recognize(images.jpeg())
    request = fake.last_request
    assert "key" not in request.query
    assert request.headers["x-goog-api-key"] == fake.api_key
    assert not any("key=" in record.getMessage() for record in caplog.records)


def test_json_request_over_10mb_fails_before_upload(provider, fake, make_backend, images):
    data = images.jpeg() + b"\0" * (8 * 2**20)  # under the 20 MB image limit, over 10 MB as base64 JSON
    with pytest.raises(ImageTooLarge, match="JSON request is .* the limit is 10,485,760 bytes"):
        make_backend().recognize(data)
    assert fake.requests == 0


def test_gif_is_accepted(provider, fake, make_backend, images):
    assert make_backend().recognize(images.encode(images.textured(), "GIF")).labels


def test_labels_look_like_google(provider, fake, make_backend, images):
    answer = make_backend(max_labels=3).recognize(images.jpeg())
    annotations = answer.raw["responses"][0]["labelAnnotations"]
    assert len(annotations) == 3
    assert all(a["mid"].startswith("/m/") and a["topicality"] == a["score"] for a in annotations)


def test_fake_requires_a_key(provider, fake, images):
    response = httpx.post(f"{fake.endpoint}/v1/images:annotate", json={"requests": []})
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
