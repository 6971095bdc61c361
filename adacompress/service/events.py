"""Structured service logs: one JSON object per event, so log pipelines can filter on `event`."""

from __future__ import annotations

import json
import logging
from typing import Any


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `{"event": event, **fields}` as one JSON line; values JSON cannot hold are written as text."""
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": event, **fields}, default=str))
