"""Reading labels out of a provider's answer, only when the answer has the documented shape.

A reply that merely parses as JSON is not an answer: a 404 page or `{}` read leniently becomes
an empty label list, which the cache would then serve for good. Every client reads its labels
here, so a reply of the wrong shape is an `UnexpectedAnswer`, never an answer.
"""

from __future__ import annotations

from typing import Any

from adacompress.cloud_backends.base import Label, UnexpectedAnswer


def read_labels(items: Any, name_key: str, score_key: str, score_scale: float, where: str) -> list[Label]:
    """`Label(item[name_key], item[score_key] / score_scale)` for each item, or `UnexpectedAnswer`.

    `where` names the answer for the error ("baidu: advanced_general's `result`").
    """
    if not isinstance(items, list):
        raise UnexpectedAnswer(f"{where} is {type(items).__name__}, not a list of labels; the endpoint did not "
                               "answer like the provider does")
    labels = []
    for item in items:
        name = item.get(name_key) if isinstance(item, dict) else None
        score = item.get(score_key) if isinstance(item, dict) else None
        if not isinstance(name, str) or isinstance(score, bool) or not isinstance(score, int | float):
            raise UnexpectedAnswer(f"{where} holds {str(item)[:80]!r}, not a label with a text `{name_key}` and a "
                                   f"numeric `{score_key}`")
        labels.append(Label(name, float(score) / score_scale))
    return labels
