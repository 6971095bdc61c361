"""The wire formats, checked against the real clients: requests built as each client builds them, replies read
by each client's own parsing (boto3 for Rekognition, our httpx backends for the others).

`serve` below is what a drop-in server does with the generic `WireFormat`; the clients talk to it
in-process (a botocore `before-send` hook, an httpx `MockTransport`), so nothing listens on a port.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.awsrequest import AWSResponse

from adacompress.cloud_backends.baidu import BaiduBackend
from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    Label,
    QuotaExhausted,
    Throttled,
    UnexpectedAnswer,
    VisionBackend,
)
from adacompress.cloud_backends.breaker import DailyQuotaExhausted
from adacompress.cloud_backends.facepp import FaceppBackend
from adacompress.cloud_backends.google import GoogleVisionBackend
from adacompress.cloud_backends.rekognition import RekognitionBackend
from adacompress.cloud_backends.wire import (
    PROVIDERS,
    ErrorKind,
    RecognitionRequest,
    UnknownWireFormat,
    WireError,
    WireFormat,
    WireReply,
    WireRequest,
    baidu,
    facepp,
    for_name,
    google,
    rekognition,
)
from adacompress.errors import BadImage, ImageTooLarge, ImageTooSmall, UnsupportedFormat

ENDPOINT = "http://127.0.0.1:9"  # never connected to: the clients' transports are in-process
ACCESS_KEY, SECRET_KEY = "AKIAWIRETEST00000000", "wire/test/secret"
CREDENTIALS = {
    "rekognition": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_DEFAULT_REGION": "eu-west-1"},
    "baidu": {"BAIDU_API_KEY": "baidu-key", "BAIDU_SECRET_KEY": "baidu-secret"},
    "facepp": {"FACEPP_API_KEY": "facepp-key", "FACEPP_API_SECRET": "facepp-secret"},
    "google": {"GOOGLE_VISION_API_KEY": "google-key"},
}
LABELS = [Label("Tabby Cat", 0.91), Label("Tiger Cat", 0.62), Label("Egyptian Cat", 0.3)]
TOKEN = "24.wiretest.2592000.0.1-fake"
ACCEPTED = {"baidu": {"access_token": TOKEN}, "facepp": {"api_key": "facepp-key", "api_secret": "facepp-secret"},
            "google": {"key": "google-key"}}
"""The credentials the test server accepts (Rekognition's are checked by SigV4)."""


def serve(fmt: WireFormat, request: WireRequest, labels: list[Label] = LABELS,
          fail: Callable[[], WireReply] | None = None) -> WireReply:
    """A drop-in server: check credentials, parse, answer every image with `labels` (or every call with `fail`)."""
    try:
        if baidu.TOKEN_ROUTE.matches(request) and fmt.name == "baidu":
            baidu.check_client(baidu.parse_token_request(request), "baidu-key", "baidu-secret")
            return baidu.token_reply(TOKEN, 2_592_000)
        sent = fmt.credentials(request)
        if fmt.name == "rekognition":
            rekognition.verify_sigv4(request, {ACCESS_KEY: SECRET_KEY})
        elif sent != ACCEPTED[fmt.name]:
            return fmt.error_reply(ErrorKind.UNAUTHORIZED)
        if fail:
            return fail()
        items = fmt.parse(request, fmt.default_limits)
        return fmt.reply(items, [labels if isinstance(item, RecognitionRequest) else item for item in items])
    except WireError as exc:
        return exc.reply


def wire_request(request: httpx.Request) -> WireRequest:
    """What a server receives for an httpx request."""
    return WireRequest(request.method, request.url.path, dict(request.url.params),
                       {name.lower(): value for name, value in request.headers.items()}, request.read())


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.body


def client(provider: str, monkeypatch: pytest.MonkeyPatch, server: Callable[[WireRequest], WireReply],
           **options: object) -> VisionBackend:
    """The provider's real client (no retry layers) whose requests `server` answers in-process."""
    for name, value in CREDENTIALS[provider].items():
        monkeypatch.setenv(name, value)
    if provider == "rekognition":
        backend = RekognitionBackend(endpoint_url=ENDPOINT, **{"min_score": 0.0, **options})

        def before_send(request, **_: object) -> AWSResponse:
            url = urlsplit(request.url)
            headers = {name.lower(): value.decode() if isinstance(value, bytes) else value
                       for name, value in request.headers.items()}
            body = request.body.encode() if isinstance(request.body, str) else request.body or b""
            reply = server(WireRequest(request.method, url.path, {}, {"host": url.netloc, **headers}, body))
            return AWSResponse(request.url, reply.status, {"Content-Type": reply.content_type, **reply.headers},
                               _Raw(reply.body))

        backend._client.meta.events.register("before-send.rekognition.DetectLabels", before_send)
        return backend
    backend = {"baidu": BaiduBackend, "facepp": FaceppBackend, "google": GoogleVisionBackend}[provider](
        endpoint=ENDPOINT, **options)

    def handle(request: httpx.Request) -> httpx.Response:
        reply = server(wire_request(request))
        return httpx.Response(reply.status, headers={"Content-Type": reply.content_type, **reply.headers},
                              content=reply.body)

    backend._client = httpx.Client(transport=httpx.MockTransport(handle))
    return backend


def code_of(provider: str, reply: WireReply) -> object:
    """The field each provider's clients read the error code from."""
    body = json.loads(reply.body)
    return {"rekognition": lambda: body["__type"], "baidu": lambda: body["error_code"],
            "facepp": lambda: body["error_message"].partition(":")[0], "google": lambda: body["error"]["status"]}[
        provider]()


# The registry -------------------------------------------------------------------------------------------------


def test_every_provider_has_a_wire_format_with_its_routes():
    assert set(PROVIDERS) == {"rekognition", "baidu", "facepp", "google"}
    assert [(r.path, r.methods) for r in for_name("baidu").routes] == [
        ("/rest/2.0/image-classify/v2/advanced_general", ("POST",)), ("/oauth/2.0/token", ("GET", "POST"))]
    assert for_name("rekognition").recognition_route.path == "/"
    assert for_name("facepp").recognition_route.path == "/imagepp/beta/detectsceneandobject"
    assert for_name("google").recognition_route.path == "/v1/images:annotate"
    with pytest.raises(UnknownWireFormat, match="azure.*known: baidu, facepp, google, rekognition"):
        for_name("azure")


# Round trips through the real clients -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_real_client_reads_the_labels_reply(provider, monkeypatch, images):
    """The client builds the request, the generic server parses and answers it, the client reads our labels."""
    seen: list[WireRequest] = []

    def server(request: WireRequest) -> WireReply:
        seen.append(request)
        return serve(for_name(provider), request)

    data = images.jpeg()
    answer = client(provider, monkeypatch, server).recognize(data)
    assert [(label.name, round(label.score, 3)) for label in answer.labels] == [
        (label.name, round(label.score, 3)) for label in LABELS]
    parsed = for_name(provider).parse(seen[-1], for_name(provider).default_limits)
    assert [item.image for item in parsed if isinstance(item, RecognitionRequest)] == [data]


@pytest.mark.parametrize(("options", "names"), [({"max_labels": 2, "min_score": 0.7}, ["Tabby Cat"]),
                                               ({"max_labels": 2, "min_score": 0.0}, ["Tabby Cat", "Tiger Cat"])])
def test_rekognition_reply_honours_max_labels_and_min_confidence(monkeypatch, images, options, names):
    """The raw reply (before the client's own filtering) holds only what MaxLabels / MinConfidence let through."""
    backend = client("rekognition", monkeypatch, lambda r: serve(rekognition.FORMAT, r), **options)
    answer = backend.recognize(images.jpeg())
    assert [label["Name"] for label in answer.raw["Labels"]] == names
    assert answer.raw["LabelModelVersion"] == "3.0"


def test_baidu_reply_keeps_the_top_five(monkeypatch, images):
    many = [Label(f"label {i}", 0.9 - i / 10) for i in range(8)]
    backend = client("baidu", monkeypatch, lambda r: serve(baidu.FORMAT, r, many))
    answer = backend.recognize(images.jpeg())
    assert answer.names == tuple(f"label {i}" for i in range(5))
    assert answer.raw["result_num"] == 5


def test_facepp_scenes_are_reported_apart_from_objects():
    reply = facepp.labels_reply(LABELS, scene_classes=frozenset({"Tiger Cat"}))
    body = json.loads(reply.body)
    assert body["scenes"] == [{"value": "Tiger Cat", "confidence": 62.0}]
    assert [o["value"] for o in body["objects"]] == ["Tabby Cat", "Egyptian Cat"]


# Rekognition: awsJson1.1 and SigV4 ---------------------------------------------------------------------------


def signed_request(monkeypatch, images, secret: str = SECRET_KEY, **params: object) -> WireRequest:
    """The DetectLabels request boto3 builds and signs with `secret`, as a server receives it."""
    captured: list[WireRequest] = []

    def server(request: WireRequest) -> WireReply:
        captured.append(request)
        return rekognition.labels_reply([])

    backend = client("rekognition", monkeypatch, server)
    backend._client.detect_labels(Image={"Bytes": images.jpeg()}, **params)
    return captured[0]


def test_sigv4_of_a_boto3_request_verifies_and_a_wrong_secret_does_not(monkeypatch, images):
    request = signed_request(monkeypatch, images)
    assert rekognition.verify_sigv4(request, {ACCESS_KEY: SECRET_KEY}) == ACCESS_KEY
    with pytest.raises(WireError) as wrong_secret:
        rekognition.verify_sigv4(request, {ACCESS_KEY: "another secret"})
    assert (wrong_secret.value.reply.status, code_of("rekognition", wrong_secret.value.reply)) == (
        400, "InvalidSignatureException")
    with pytest.raises(WireError) as unknown_key:
        rekognition.verify_sigv4(request, {"AKIASOMEONEELSE": SECRET_KEY})
    assert code_of("rekognition", unknown_key.value.reply) == "UnrecognizedClientException"
    tampered = WireRequest(request.method, request.path, request.query, request.headers, request.body + b" ")
    with pytest.raises(WireError, match="InvalidSignatureException"):
        rekognition.verify_sigv4(tampered, {ACCESS_KEY: SECRET_KEY})


def test_rekognition_parses_the_boto3_request(monkeypatch, images):
    request = signed_request(monkeypatch, images, MaxLabels=7, MinConfidence=42.5)
    assert rekognition.credentials(request) == {"access_key": ACCESS_KEY}
    parsed = rekognition.parse_recognition(request)
    assert parsed.image == images.jpeg()
    assert parsed.params == {"max_labels": 7, "min_confidence": 42.5}


def _aws(headers: dict[str, str] | None = None, body: object = None) -> WireRequest:
    base = {"x-amz-target": rekognition.TARGET, "content-type": rekognition.CONTENT_TYPE}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WireRequest("POST", "/", {}, {**base, **(headers or {})}, raw)


@pytest.mark.parametrize(("request_", "status", "code"), [
    (_aws({"x-amz-target": "RekognitionService.DetectFaces"}, {}), 400, "UnknownOperationException"),
    (_aws({"content-type": "application/json"}, {}), 400, "SerializationException"),
    (_aws(body=b"{not json"), 400, "InvalidParameterException"),
    (_aws(body={"Image": {"S3Object": {"Bucket": "b", "Name": "n"}}}), 400, "InvalidParameterException"),
    (_aws(body={"Image": {"Bytes": "not base64!"}}), 400, "InvalidParameterException"),
    (_aws(body={"Image": {"Bytes": base64.b64encode(b"GIF89a...").decode()}}), 400, "InvalidImageFormatException"),
    (_aws(body={"Image": {"Bytes": ""}, "MaxLabels": "ten"}), 400, "InvalidParameterException"),
], ids=["target", "content-type", "json", "s3-object", "base64", "format", "max-labels"])
def test_rekognition_refuses_malformed_requests_as_aws_does(request_, status, code):
    with pytest.raises(WireError) as caught:
        rekognition.parse_recognition(request_)
    assert (caught.value.reply.status, code_of("rekognition", caught.value.reply)) == (status, code)
    assert caught.value.reply.content_type == rekognition.CONTENT_TYPE
    assert caught.value.reply.headers["x-amzn-RequestId"]


def test_rekognition_without_a_signature_is_a_403():
    with pytest.raises(WireError) as caught:
        rekognition.credentials(_aws(body={}))
    assert (caught.value.reply.status, code_of("rekognition", caught.value.reply)) == (
        403, "MissingAuthenticationTokenException")


def test_rekognition_image_limits_answer_aws_errors(images):
    def detect(data: bytes) -> WireRequest:
        return _aws(body={"Image": {"Bytes": base64.b64encode(data).decode()}})

    for data, code in [(images.jpeg(size=(40, 40)), "InvalidParameterException"),
                       (images.jpeg() + b"\0" * (5 * 2**20), "ImageTooLargeException")]:
        with pytest.raises(WireError) as caught:
            rekognition.parse_recognition(detect(data))
        assert code_of("rekognition", caught.value.reply) == code


# Baidu: form body, access_token, token route ------------------------------------------------------------------


def _baidu(form: dict[str, str] | None, token: str | None = TOKEN) -> WireRequest:
    return wire_request(httpx.Request("POST", f"{ENDPOINT}{baidu.ROUTE.path}",
                                      params={"access_token": token} if token else {}, data=form))


def test_baidu_parses_the_clients_form_and_token(images):
    request = _baidu({"image": base64.b64encode(images.jpeg()).decode()})
    assert baidu.credentials(request) == {"access_token": TOKEN}
    assert baidu.parse_recognition(request).image == images.jpeg()


@pytest.mark.parametrize(("form", "code"), [
    ({}, 216101), ({"image": ""}, 216200), ({"image": "%%% not base64"}, 216201),
    ({"image": base64.b64encode(b"GIF89a...").decode()}, 216201),
], ids=["missing", "empty", "base64", "format"])
def test_baidu_refuses_malformed_forms_with_its_codes_at_http_200(form, code):
    with pytest.raises(WireError) as caught:
        baidu.parse_recognition(_baidu(form))
    assert (caught.value.reply.status, code_of("baidu", caught.value.reply)) == (200, code)


def test_baidu_too_small_and_too_large_are_216202(images):
    for data in (images.jpeg(size=(12, 12)), images.jpeg() + b"\0" * (3 * 2**20)):
        with pytest.raises(WireError) as caught:
            baidu.parse_recognition(_baidu({"image": base64.b64encode(data).decode()}))
        assert code_of("baidu", caught.value.reply) == 216202


def test_baidu_without_access_token_is_error_100():
    with pytest.raises(WireError) as caught:
        baidu.credentials(_baidu({}, token=None))
    assert code_of("baidu", caught.value.reply) == 100


def test_baidu_token_route_as_the_sdk_and_our_client_call_it():
    query = {"grant_type": "client_credentials", "client_id": "k", "client_secret": "s"}
    for request in (httpx.Request("GET", f"{ENDPOINT}/oauth/2.0/token", params=query),
                    httpx.Request("POST", f"{ENDPOINT}/oauth/2.0/token", data=query)):
        grant = baidu.parse_token_request(wire_request(request))
        assert grant == baidu.TokenRequest("k", "s")
        baidu.check_client(grant, "k", "s")
    body = json.loads(baidu.token_reply("24.t", 30).body)
    assert body["access_token"] == "24.t" and body["expires_in"] == 30 and "brain_all_scope" in body["scope"].split()


@pytest.mark.parametrize(("query", "api_key", "status", "error", "description"), [
    ({"grant_type": "password"}, "k", 400, "unsupported_grant_type", "The authorization grant type is not supported"),
    ({"grant_type": "client_credentials", "client_id": "x", "client_secret": "s"}, "k", 401, "invalid_client",
     "unknown client id"),
    ({"grant_type": "client_credentials", "client_id": "k", "client_secret": "x"}, "k", 401, "invalid_client",
     "Client authentication failed"),
])
def test_baidu_token_route_refusals_are_oauth_errors(query, api_key, status, error, description):
    with pytest.raises(WireError) as caught:
        grant = baidu.parse_token_request(wire_request(httpx.Request("POST", f"{ENDPOINT}/oauth/2.0/token",
                                                                     params=query)))
        baidu.check_client(grant, api_key, "s")
    assert caught.value.reply.status == status
    assert json.loads(caught.value.reply.body) == {"error": error, "error_description": description}


# Face++: form or multipart, api_key / api_secret ----------------------------------------------------------------


def _facepp(data: dict[str, str] | None = None, files: dict | None = None, content: bytes | None = None
            ) -> WireRequest:
    return wire_request(httpx.Request("POST", f"{ENDPOINT}{facepp.ROUTE.path}", data=data, files=files,
                                      content=content))


def test_facepp_parses_multipart_and_urlencoded(images):
    keys = {"api_key": "facepp-key", "api_secret": "facepp-secret"}
    multipart = _facepp(keys, files={"image_file": ("a.jpg", images.jpeg(), "image/jpeg")})
    assert facepp.credentials(multipart) == keys
    assert facepp.parse_recognition(multipart).params == {"field": "image_file"}
    assert facepp.parse_recognition(multipart).image == images.jpeg()
    urlencoded = _facepp({**keys, "image_base64": base64.b64encode(images.jpeg()).decode()})
    assert facepp.parse_recognition(urlencoded).image == images.jpeg()


@pytest.mark.parametrize(("data", "status", "message"), [
    ({"api_secret": "s"}, 400, "MISSING_ARGUMENTS: api_key"),
    ({"api_key": "k"}, 400, "MISSING_ARGUMENTS: api_secret"),
])
def test_facepp_requires_both_keys(data, status, message):
    with pytest.raises(WireError) as caught:
        facepp.credentials(_facepp(data))
    assert caught.value.reply.status == status
    assert json.loads(caught.value.reply.body)["error_message"] == message


@pytest.mark.parametrize(("data", "message"), [
    ({}, "MISSING_ARGUMENTS: image_url, image_file, image_base64"),
    ({"image_url": "https://example.com/a.jpg"}, "INVALID_IMAGE_URL"),
    ({"image_base64": "not base64!"}, "IMAGE_ERROR_UNSUPPORTED_FORMAT:image_base64"),
    ({"image_base64": base64.b64encode(b"GIF89a...").decode()}, "IMAGE_ERROR_UNSUPPORTED_FORMAT:image_base64"),
], ids=["missing", "url", "base64", "format"])
def test_facepp_refuses_bad_images_naming_the_field(data, message):
    with pytest.raises(WireError) as caught:
        facepp.parse_recognition(_facepp(data))
    assert caught.value.reply.status == 400
    assert json.loads(caught.value.reply.body)["error_message"] == message


def test_facepp_too_small_image_and_oversized_body(images):
    with pytest.raises(WireError) as small:
        facepp.parse_recognition(_facepp(files={"image_file": ("a.jpg", images.jpeg(size=(20, 20)), "image/jpeg")}))
    assert json.loads(small.value.reply.body)["error_message"] == "INVALID_IMAGE_SIZE:image_file"
    with pytest.raises(WireError) as large:
        facepp.credentials(_facepp(content=b"x" * (2 * 2**20 + 1)))
    assert (large.value.reply.status, large.value.reply.content_type) == (413, "text/plain")
    assert large.value.reply.body == b"Request Entity Too Large"


# Google: API key, batches, per-image errors --------------------------------------------------------------------


def _google(payload: object, key: str | None = "google-key", query: dict | None = None) -> WireRequest:
    headers = {"Content-Type": "application/json", **({"X-Goog-Api-Key": key} if key else {})}
    return wire_request(httpx.Request("POST", f"{ENDPOINT}{google.ROUTE.path}", params=query, headers=headers,
                                      content=payload if isinstance(payload, bytes) else json.dumps(payload)))


def _item(data: bytes, features: list[dict] | None = None) -> dict:
    return {"image": {"content": base64.b64encode(data).decode()},
            "features": [{"type": "LABEL_DETECTION", "maxResults": 2}] if features is None else features}


def test_google_key_in_the_header_or_the_query():
    assert google.credentials(_google({"requests": []})) == {"key": "google-key"}
    assert google.credentials(_google({"requests": []}, key=None, query={"key": "q"})) == {"key": "q"}
    with pytest.raises(WireError) as caught:
        google.credentials(_google({"requests": []}, key=None))
    assert (caught.value.reply.status, code_of("google", caught.value.reply)) == (403, "PERMISSION_DENIED")


def test_google_batch_answers_each_image_on_its_own(images):
    """Four images: labelled, undecodable, no LABEL_DETECTION asked, and 12x12 px (Google has no minimum)."""
    request = _google({"requests": [_item(images.jpeg()), _item(b"GIF89a..."),
                                    _item(images.jpeg(), [{"type": "FACE_DETECTION"}]),
                                    _item(images.jpeg(size=(12, 12)))]})
    items = google.parse_batch(request)
    assert isinstance(items[0], RecognitionRequest) and items[0].params == {"max_results": 2}
    assert isinstance(items[1], BadImage) and items[2] is None and isinstance(items[3], RecognitionRequest)
    reply = google.batch_reply(items, [LABELS, items[1], None, LABELS[:1]], mid=lambda label: "/m/x")
    responses = json.loads(reply.body)["responses"]
    assert reply.status == 200
    assert [a["description"] for a in responses[0]["labelAnnotations"]] == ["Tabby Cat", "Tiger Cat"]
    assert responses[0]["labelAnnotations"][0] == {"mid": "/m/x", "description": "Tabby Cat", "score": 0.91,
                                                   "topicality": 0.91}
    assert responses[1] == {"error": {"code": 3, "message": "Bad image data."}}
    assert responses[2] == {}
    assert len(responses[3]["labelAnnotations"]) == 1


@pytest.mark.parametrize("payload", [b"{not json", {"requests": {"image": {}}}, {"requests": ["x"]},
                                     {"requests": [{"features": "LABEL_DETECTION"}]},
                                     {"requests": [{"features": [{"type": "LABEL_DETECTION", "maxResults": "x"}]}]},
                                     {"requests": [{}] * 17}],
                         ids=["json", "not-a-list", "not-an-object", "features", "max-results", "17-images"])
def test_google_refuses_malformed_batches_with_invalid_argument(payload):
    with pytest.raises(WireError) as caught:
        google.parse_batch(_google(payload))
    assert (caught.value.reply.status, code_of("google", caught.value.reply)) == (400, "INVALID_ARGUMENT")


def test_google_request_over_10mb_is_refused_before_parsing():
    with pytest.raises(WireError, match="payload size exceeds the limit: 10485760 bytes"):
        google.parse_batch(_google(b" " * (10 * 2**20 + 1)))


# Errors of every kind, in each provider's shape ------------------------------------------------------------

DOCUMENTED: dict[str, dict[ErrorKind, tuple[int, object]]] = {
    "rekognition": {
        ErrorKind.BAD_REQUEST: (400, "InvalidParameterException"),
        ErrorKind.BAD_IMAGE: (400, "InvalidImageFormatException"),
        ErrorKind.IMAGE_TOO_LARGE: (400, "ImageTooLargeException"),
        ErrorKind.THROTTLED: (500, "ThrottlingException"),
        ErrorKind.RATE_LIMITED: (400, "ProvisionedThroughputExceededException"),
        ErrorKind.QUOTA_EXCEEDED: (400, "LimitExceededException"),
        ErrorKind.UNAUTHORIZED: (400, "UnrecognizedClientException"),
        ErrorKind.INTERNAL: (500, "InternalServerError"),
        ErrorKind.UNAVAILABLE: (500, "InternalServerError"),
        ErrorKind.NOT_FOUND: (404, "UnknownOperationException"),
    },
    "baidu": {
        ErrorKind.BAD_REQUEST: (200, 216100), ErrorKind.BAD_IMAGE: (200, 216201),
        ErrorKind.IMAGE_TOO_LARGE: (200, 216202), ErrorKind.THROTTLED: (200, 18), ErrorKind.RATE_LIMITED: (200, 18),
        ErrorKind.QUOTA_EXCEEDED: (200, 17), ErrorKind.UNAUTHORIZED: (200, 110), ErrorKind.INTERNAL: (200, 282000),
        ErrorKind.UNAVAILABLE: (200, 2), ErrorKind.NOT_FOUND: (200, 3),
    },
    "facepp": {
        ErrorKind.BAD_REQUEST: (400, "BAD_ARGUMENTS"), ErrorKind.BAD_IMAGE: (400, "IMAGE_ERROR_UNSUPPORTED_FORMAT"),
        ErrorKind.IMAGE_TOO_LARGE: (400, "IMAGE_FILE_TOO_LARGE"),
        ErrorKind.THROTTLED: (403, "CONCURRENCY_LIMIT_EXCEEDED"),
        ErrorKind.RATE_LIMITED: (403, "CONCURRENCY_LIMIT_EXCEEDED"),
        ErrorKind.QUOTA_EXCEEDED: (403, "AUTHORIZATION_ERROR"), ErrorKind.UNAUTHORIZED: (401, "AUTHENTICATION_ERROR"),
        ErrorKind.INTERNAL: (500, "INTERNAL_ERROR"), ErrorKind.UNAVAILABLE: (500, "INTERNAL_ERROR"),
        ErrorKind.NOT_FOUND: (404, "API_NOT_FOUND"),
    },
    "google": {
        ErrorKind.BAD_REQUEST: (400, "INVALID_ARGUMENT"), ErrorKind.BAD_IMAGE: (400, "INVALID_ARGUMENT"),
        ErrorKind.IMAGE_TOO_LARGE: (400, "INVALID_ARGUMENT"), ErrorKind.THROTTLED: (429, "RESOURCE_EXHAUSTED"),
        ErrorKind.RATE_LIMITED: (429, "RESOURCE_EXHAUSTED"), ErrorKind.QUOTA_EXCEEDED: (429, "RESOURCE_EXHAUSTED"),
        ErrorKind.UNAUTHORIZED: (400, "INVALID_ARGUMENT"), ErrorKind.INTERNAL: (500, "INTERNAL"),
        ErrorKind.UNAVAILABLE: (503, "UNAVAILABLE"), ErrorKind.NOT_FOUND: (404, "NOT_FOUND"),
    },
}
"""Status and error code per kind, as cloud-apis.md documents them (and the fakes have always sent)."""
CLIENT_SEES: dict[ErrorKind, dict[str, type[Exception]]] = {
    ErrorKind.BAD_REQUEST: {"rekognition": BadImage, "baidu": BackendError, "facepp": BackendError,
                            "google": BackendError},
    ErrorKind.BAD_IMAGE: {"rekognition": UnsupportedFormat, "baidu": UnsupportedFormat, "facepp": UnsupportedFormat,
                          "google": BackendError},
    ErrorKind.IMAGE_TOO_LARGE: {"rekognition": ImageTooLarge, "baidu": BadImage, "facepp": ImageTooLarge,
                                "google": ImageTooLarge},
    ErrorKind.THROTTLED: dict.fromkeys(PROVIDERS, Throttled),
    ErrorKind.RATE_LIMITED: dict.fromkeys(PROVIDERS, Throttled),
    ErrorKind.QUOTA_EXCEEDED: {"rekognition": QuotaExhausted, "baidu": DailyQuotaExhausted,
                               "facepp": QuotaExhausted, "google": DailyQuotaExhausted},
    ErrorKind.UNAUTHORIZED: dict.fromkeys(PROVIDERS, AuthError),
    ErrorKind.INTERNAL: dict.fromkeys(PROVIDERS, BackendUnavailable),
    ErrorKind.UNAVAILABLE: dict.fromkeys(PROVIDERS, BackendUnavailable),
    ErrorKind.NOT_FOUND: {"rekognition": UnexpectedAnswer, "baidu": BackendError, "facepp": BackendError,
                          "google": BackendError},
}
"""The typed error each real client raises for each kind: retried, not retried, breaker, auth."""


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("kind", list(ErrorKind))
def test_error_reply_has_the_documented_status_and_code(provider, kind):
    reply = for_name(provider).error_reply(kind)
    assert (reply.status, code_of(provider, reply)) == DOCUMENTED[provider][kind]
    assert "Retry-After" not in reply.headers


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("kind", list(ErrorKind))
def test_the_real_client_reads_each_error_as_the_right_typed_error(provider, kind, monkeypatch, images):
    fmt = for_name(provider)
    backend = client(provider, monkeypatch, lambda request: serve(fmt, request, fail=lambda: fmt.error_reply(kind)))
    with pytest.raises(CLIENT_SEES[kind][provider]) as caught:
        backend.recognize(images.jpeg())
    assert type(caught.value) is CLIENT_SEES[kind][provider], caught.value  # that class, not a subclass


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_throttling_carries_retry_after_in_whole_seconds(provider, monkeypatch, images):
    fmt = for_name(provider)
    reply = fmt.error_reply(ErrorKind.THROTTLED, retry_after_s=1.2)
    assert reply.headers["Retry-After"] == "2"
    backend = client(provider, monkeypatch, lambda request: serve(fmt, request, fail=lambda: reply))
    with pytest.raises(Throttled) as caught:
        backend.recognize(images.jpeg())
    if provider != "baidu":  # Baidu's client reads the code in the 200 body, never the headers
        assert caught.value.retry_after_s == 2.0


def test_error_message_replaces_the_usual_text():
    assert json.loads(rekognition.error_reply(ErrorKind.BAD_REQUEST, "MaxLabels must be >= 0").body)["Message"] \
        == "MaxLabels must be >= 0"
    assert json.loads(facepp.error_reply(ErrorKind.BAD_IMAGE, "image_file").body)["error_message"] \
        == "IMAGE_ERROR_UNSUPPORTED_FORMAT:image_file"
    assert json.loads(facepp.error_reply(ErrorKind.QUOTA_EXCEEDED).body)["error_message"] \
        == "AUTHORIZATION_ERROR:Insufficient Account Balance"
    assert json.loads(baidu.error_reply(ErrorKind.THROTTLED).body)["error_msg"] == "Open api qps request limit reached"


@pytest.mark.parametrize("provider", ["rekognition", "baidu", "facepp"])
def test_an_image_refused_upstream_is_answered_in_the_providers_shape(provider, monkeypatch, images):
    """A one-image provider answers a `BadImage` answer (e.g. from the upstream API) with its own image error."""
    fmt = for_name(provider)

    def server(request: WireRequest) -> WireReply:
        if baidu.TOKEN_ROUTE.matches(request):
            return baidu.token_reply(TOKEN, 2_592_000)
        return fmt.reply(fmt.parse(request, fmt.default_limits), [ImageTooSmall("upstream: image is 12x12 px")])

    with pytest.raises(BadImage) as caught:
        client(provider, monkeypatch, server).recognize(images.jpeg())
    assert type(caught.value) is BadImage, caught.value  # Rekognition, Baidu and Face++ name no finer kind
    with pytest.raises(ValueError, match="exactly one"):
        fmt.reply([], [])
