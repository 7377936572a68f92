"""Japanese-first message catalogs and locale negotiation."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = ("ja", "en")
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "auth", "scheduling", "rtc", "devices", "surveys")


def catalog_files(locale: str) -> list[Path]:
    """Each package keeps its own messages: <package>/locales/<locale>.json and *.<locale>.json."""
    files: list[Path] = []
    for package in PACKAGES:
        folder = ROOT / package / "locales"
        if folder.is_dir():
            files.extend(sorted(folder.glob(f"{locale}.json")) + sorted(folder.glob(f"*.{locale}.json")))
    return files


@cache
def catalog(locale: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in catalog_files(locale):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def translate(locale: str, key: str, **params: Any) -> str:
    """Message for key in locale; falls back to Japanese, then to the key itself."""
    text = catalog(locale if locale in LOCALES else "ja").get(key) or catalog("ja").get(key) or key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def negotiate(accept_language: str | None, default: str) -> str:
    """Pick ja or en from an Accept-Language header, honouring q-values."""
    if not accept_language:
        return default
    best, best_q = default, -1.0
    for part in accept_language.split(","):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = lang.strip().lower().split("-")[0]
        if primary in LOCALES and q > best_q:
            best, best_q = primary, q
    return best
