"""Each cloud vision API's wire format, framework-free: parse a provider's request, build its replies and errors.

The fake servers and the upload proxy's drop-in routes share these, so a stock client (boto3,
the Baidu SDK, httpx) talks to either as it would to the provider itself. `for_name` gives a
provider's `WireFormat`; the provider modules hold the finer pieces (SigV4, Baidu's token route).
"""

from __future__ import annotations

from adacompress.cloud_backends.wire import baidu, facepp, google, rekognition
from adacompress.cloud_backends.wire.common import (
    Answer,
    BatchItem,
    ErrorKind,
    RecognitionRequest,
    Route,
    UnknownWireFormat,
    WireError,
    WireFormat,
    WireReply,
    WireRequest,
)

PROVIDERS: dict[str, WireFormat] = {
    fmt.name: fmt for fmt in (rekognition.FORMAT, baidu.FORMAT, facepp.FORMAT, google.FORMAT)
}


def for_name(provider: str) -> WireFormat:
    """The wire format of `provider` (rekognition, baidu, facepp, google)."""
    try:
        return PROVIDERS[provider]
    except KeyError:
        raise UnknownWireFormat(f"no wire format for {provider!r}; known: {', '.join(sorted(PROVIDERS))}") from None


__all__ = [
    "PROVIDERS", "Answer", "BatchItem", "ErrorKind", "RecognitionRequest", "Route", "UnknownWireFormat", "WireError",
    "WireFormat", "WireReply", "WireRequest", "baidu", "facepp", "for_name", "google", "rekognition",
]
