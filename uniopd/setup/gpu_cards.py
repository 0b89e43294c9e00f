"""The GPU a plan is sized for: a card's name or a size in GiB, from `--gpu` or from the
experiment file itself, whose comment line

    # gpu: h100

(in the file or a `base:` file it inherits; the nearest wins) says which card it is meant for.
A comment, not a field: the card is where a file is meant to run, not how it trains, so a run
directory's resolved config does not carry it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from uniopd.setup.plan_images import PlanError

GIB = 2**30
# memory as torch reports it (total_memory): an H100 SXM's 80 GiB, an H200's 141 GB HBM3e
CARDS = {"h100": 80.0, "h200": 140.0, "a100": 80.0, "a100-40": 40.0, "l40s": 45.0}
DEFAULT_CARD = "h100"
_LINE = re.compile(r"^#\s*gpu:\s*(\S+)", re.MULTILINE)


def card_bytes(card: str) -> tuple[str, int]:
    """(a printable name, bytes) of a card name or a size in GiB (PlanError otherwise)."""
    key = card.strip().lower()
    if key in CARDS:
        return key.upper(), int(CARDS[key] * GIB)
    try:
        gib = float(key.removesuffix("gib"))
    except ValueError:
        gib = 0.0
    if gib <= 0:
        names = ", ".join(CARDS)
        raise PlanError(f"gpu {card!r}: not a card ({names}) nor a size in GiB (e.g. 96)")
    return f"{gib:g} GiB GPU", int(gib * GIB)


def file_card(path: Path) -> str | None:
    """The card the experiment file at `path` (or the nearest of its bases) names, or None."""
    seen: set[Path] = set()
    while path.is_file() and path.resolve() not in seen:
        seen.add(path.resolve())
        text = path.read_text()
        found = _LINE.search(text)
        if found:
            return found.group(1)
        try:
            base = (yaml.safe_load(text) or {}).get("base")
        except (yaml.YAMLError, AttributeError):
            return None  # the loader names a malformed file
        if not isinstance(base, str):
            return None
        path = path.parent / base
    return None
