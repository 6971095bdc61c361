"""Drop-in routes: stock clients in each provider's wire format, pointed at the proxy, change nothing else.

boto3 goes through the proxy to the fake Rekognition (the proxy's upstream, with its own credentials);
the Baidu, Face++ and Google routes are driven with plain HTTP as their SDKs send them, upstream the
local backend. Client auth on and off; a bad image and upstream throttling answered in the provider's
own error shape.
"""

from __future__ import annotations

import base64
import io

import boto3
import httpx
import pytest
from _proxy_server import jpeg, make_service, running
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from adacompress.cloud_backends.fakes import make_fake
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import Action, encode
from adacompress.service.proxy import ProxyConfig

API_KEY = "proxy-api-key-0123"


def rekognition_client(url: str, secret: str = "any-secret", access_key: str = "adacompress"):
    return boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=access_key,
                        aws_secret_access_key=secret,
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


@pytest.fixture
def fake_rekognition(monkeypatch):
    fake = make_fake("rekognition").start()
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    yield fake
    fake.stop()


def upstream(fake) -> object:
    return create_backend("rekognition", cache="off", qps=None, max_attempts=1, deadline_s=10.0, min_score=0.0)


def test_boto3_detect_labels_through_the_proxy_reaches_the_fake_rekognition_compressed(fake_rekognition, photos):
    body = jpeg(photos[0], quality=95)
    with running(make_service(backend=upstream(fake_rekognition))) as url:
        answer = rekognition_client(url).detect_labels(Image={"Bytes": body}, MaxLabels=5)
        metrics = httpx.get(f"{url}/metrics").text
    assert fake_rekognition.answered == 1
    sent = encode(Image.open(io.BytesIO(body)), Action("jpeg", 10)).data
    direct = upstream(fake_rekognition).recognize(sent).labels  # what the fake answers for the bytes sent
    expected = [label.name for label in direct if label.score * 100 >= 55][:5]  # DetectLabels' defaults, MaxLabels
    assert [label["Name"] for label in answer["Labels"]] == expected and expected
    assert answer["LabelModelVersion"] and len(answer["Labels"]) <= 5
    assert f"adacompress_bytes_sent_total {float(len(sent))}" in metrics and len(sent) < len(body)


def test_boto3_with_client_auth_needs_the_api_key_as_its_secret(photos):
    service = make_service(config=ProxyConfig(api_key=API_KEY))
    with running(service) as url:
        with pytest.raises(ClientError) as wrong:
            rekognition_client(url, secret="not-the-key").detect_labels(Image={"Bytes": jpeg(photos[0])})
        with pytest.raises(ClientError) as stranger:
            rekognition_client(url, secret=API_KEY, access_key="AKIASTRANGER").detect_labels(
                Image={"Bytes": jpeg(photos[0])})
        right = rekognition_client(url, secret=API_KEY).detect_labels(Image={"Bytes": jpeg(photos[0])},
                                                                      MinConfidence=1)
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert stranger.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert right["Labels"] and service.daemon.state.requests == 1


def test_a_bad_image_on_the_rekognition_route_is_rekognitions_own_error(photos):
    with running(make_service()) as url:
        with pytest.raises(ClientError) as error:
            rekognition_client(url).detect_labels(Image={"Bytes": b"definitely not an image" * 10})
    assert error.value.response["Error"]["Code"] == "InvalidImageFormatException"


def test_upstream_throttling_reaches_a_boto3_client_as_throttling(fake_rekognition, photos):
    with running(make_service(backend=upstream(fake_rekognition))) as url:
        fake_rekognition.faults.throttle_next = 1
        with pytest.raises(ClientError) as error:
            rekognition_client(url).detect_labels(Image={"Bytes": jpeg(photos[0])})
    assert error.value.response["Error"]["Code"] == "ThrottlingException"


@pytest.mark.parametrize("api_key", [None, API_KEY])
def test_baidu_token_then_advanced_general(photos, api_key):
    image = base64.b64encode(jpeg(photos[1])).decode()
    with running(make_service(config=ProxyConfig(api_key=api_key))) as url:
        refused = httpx.post(f"{url}/oauth/2.0/token", params={"grant_type": "client_credentials",
                                                               "client_id": "adacompress", "client_secret": "wrong"})
        token = httpx.post(f"{url}/oauth/2.0/token", params={
            "grant_type": "client_credentials", "client_id": "adacompress",
            "client_secret": api_key or "anything"}).json()["access_token"]
        route = f"{url}/rest/2.0/image-classify/v2/advanced_general"
        answer = httpx.post(route, params={"access_token": token}, data={"image": image}, timeout=30).json()
        forged = httpx.post(route, params={"access_token": "24.forged"}, data={"image": image}, timeout=30).json()
    assert answer["result_num"] == len(answer["result"]) > 0 and answer["result"][0]["keyword"]
    if api_key is None:
        assert "access_token" in refused.json() and "error_code" not in forged
    else:
        assert refused.json()["error"] == "invalid_client" and forged["error_code"] == 110


def test_facepp_and_google_routes_answer_in_their_own_shapes(photos):
    body = jpeg(photos[2])
    with running(make_service(config=ProxyConfig(api_key=API_KEY))) as url:
        facepp = httpx.post(f"{url}/imagepp/beta/detectsceneandobject", timeout=30, data={
            "api_key": "adacompress", "api_secret": API_KEY, "image_base64": base64.b64encode(body).decode()}).json()
        facepp_wrong = httpx.post(f"{url}/imagepp/beta/detectsceneandobject", timeout=30, data={
            "api_key": "adacompress", "api_secret": "nope", "image_base64": base64.b64encode(body).decode()})
        request = {"requests": [{"image": {"content": base64.b64encode(body).decode()},
                                 "features": [{"type": "LABEL_DETECTION", "maxResults": 3}]},
                                {"image": {"content": base64.b64encode(b"not an image").decode()},
                                 "features": [{"type": "LABEL_DETECTION"}]}]}
        google = httpx.post(f"{url}/v1/images:annotate", params={"key": API_KEY}, json=request, timeout=30).json()
        google_wrong = httpx.post(f"{url}/v1/images:annotate", params={"key": "nope"}, json=request, timeout=30)
    assert facepp["objects"] or facepp["scenes"]
    assert facepp_wrong.status_code == 401 and facepp_wrong.json()["error_message"] == "AUTHENTICATION_ERROR"
    first, second = google["responses"]
    assert 0 < len(first["labelAnnotations"]) <= 3 and first["labelAnnotations"][0]["description"]
    assert second["error"]["code"] == 3  # the bad image is refused inside the batch, as Google does
    assert google_wrong.status_code in (400, 403)
