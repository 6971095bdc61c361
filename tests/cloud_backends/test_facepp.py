"""Face++ specifics: scenes as an option, the gateway's plain-text 413, the form-body size limit."""

from __future__ import annotations

import base64

import httpx
import pytest

from adacompress.cloud_backends.limits import ImageLimits
from adacompress.errors import ImageTooLarge

pytestmark = pytest.mark.parametrize("provider", ["facepp"], indirect=True)


@pytest.fixture
def fake_options(images) -> dict:
    """Declare the seed-0 image's top ImageNet class a scene, so the answer has both kinds."""
    from adacompress.cloud_backends.fakes.server import FakeLabeler

    top = FakeLabeler().labels(images.jpeg())[0][0]
    return {"scene_classes": frozenset({top})}


def test_objects_only_by_default_scenes_on_request(provider, fake, make_backend, images):
    objects_only = make_backend().recognize(images.jpeg())
    with_scenes = make_backend(scenes=True).recognize(images.jpeg())
    scene_names = {s["value"] for s in objects_only.raw["scenes"]}
    assert scene_names and not scene_names & set(objects_only.names)
    assert scene_names <= set(with_scenes.names)
    assert all(round(o["confidence"], 3) == o["confidence"] for o in objects_only.raw["objects"])


def test_plain_text_413_is_image_too_large(provider, fake, make_backend, images):
    """With the client's checks loosened, the gateway's non-JSON 413 still maps to ImageTooLarge."""
    loose = ImageLimits(max_bytes=2**30, formats=frozenset({"JPEG"}))
    with pytest.raises(ImageTooLarge, match="HTTP 413"):
        make_backend(limits=loose).recognize(images.jpeg() + b"\0" * (2 * 2**20))
    assert fake.requests == 1 and fake.calls == 0


def test_form_body_over_2mb_fails_before_upload(provider, fake, make_backend, images):
    data = images.jpeg() + b"\0" * 1_600_000  # under 2 MB raw, over 2 MB once base64 and form encoded
    assert len(data) < 2 * 2**20
    with pytest.raises(ImageTooLarge, match="form body is .* the limit is 2,097,152 bytes"):
        make_backend().recognize(data)
    assert fake.requests == 0


def test_fake_accepts_multipart_image_file(provider, fake, images):
    response = httpx.post(f"{fake.endpoint}/imagepp/beta/detectsceneandobject",
                          data={"api_key": fake.api_key, "api_secret": fake.api_secret},
                          files={"image_file": ("a.jpg", images.jpeg(), "image/jpeg")})
    assert response.status_code == 200
    assert response.json()["objects"] or response.json()["scenes"]


def test_fake_reports_missing_arguments(provider, fake, images):
    response = httpx.post(f"{fake.endpoint}/imagepp/beta/detectsceneandobject",
                          data={"api_key": fake.api_key, "api_secret": fake.api_secret})
    assert response.status_code == 400
    assert response.json()["error_message"].startswith("MISSING_ARGUMENTS")
    bad = httpx.post(f"{fake.endpoint}/imagepp/beta/detectsceneandobject",
                     data={"api_key": fake.api_key, "api_secret": fake.api_secret,
                           "image_base64": base64.b64encode(b"GIF89a not really").decode()})
    assert bad.json()["error_message"] == "IMAGE_ERROR_UNSUPPORTED_FORMAT:image_base64"
