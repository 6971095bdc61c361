"""Typed errors shared across the package, each with a stable `code` for CLI lines and JSON bodies."""

from __future__ import annotations


class AdaCompressError(Exception):
    """Base of every error this package raises on purpose."""

    code = "adacompress_error"


class BadImage(AdaCompressError):
    """The client's image cannot be used; retrying the same bytes will not help."""

    code = "bad_image"


class ImageTooLarge(BadImage):
    code = "image_too_large"


class TooManyPixels(BadImage):
    code = "too_many_pixels"


class ImageTooSmall(BadImage):
    code = "image_too_small"


class NotAnImage(BadImage):
    code = "not_an_image"


class TruncatedImage(BadImage):
    code = "truncated_image"


class CorruptImage(BadImage):
    code = "corrupt_image"


class UnsupportedFormat(BadImage):
    code = "unsupported_format"
