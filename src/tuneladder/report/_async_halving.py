"""The report's words on a sweep that halved asynchronously (tuneladder.search.asha).

Its levels' table is the synchronous one's (who reached which level, the best at
each level's epochs); what differs is why a config went on, which this note says,
with the count of promotions the sweep's log recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

__all__ = ["async_note"]


def async_note(rung: str, halving: Mapping[str, Any]) -> str:
    """A paragraph for a sweep whose summary says ``mode: async``; empty otherwise."""
    if halving.get("mode") != "async":
        return ""
    promotions = sum(len(level["continued"]) for level in halving["levels"])
    return (
        f"<p>{escape(rung)} halved asynchronously (ASHA): no level waited for the one"
        " before to end; a config went on as soon as it was among the best"
        f" 1/{escape(str(halving['eta']))} of the configs finished at its level so far"
        f" ({promotions} promotions). Which configs went on therefore depends on the order"
        " the trials finished in, which"
        f" <code>{escape(rung)}/levels/promotions.jsonl</code> records, ask by ask; a rerun"
        " replays it, so it keeps every promotion and trains nothing twice. A config"
        " promoted early may have fallen out of the best 1/eta once more finished."
        + _grown_note(halving)
        + "</p>"
    )


def _grown_note(halving: Mapping[str, Any]) -> str:
    grown = halving.get("grown") or []
    if not grown:
        return ""
    planned = halving["levels"][0]["planned"]
    return (
        f" The sweep grew: {len(grown)} configs beyond its {planned} trials were trained"
        " while workers would otherwise have waited for its last trainings, each expected"
        " to end before them; its trials went on as they would have without them, and"
        " the grown configs rank as any other."
    )
