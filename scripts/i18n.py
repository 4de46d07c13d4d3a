"""Dashboard translations: extract the Chinese source strings, update the English catalog, compile it.

    .venv/bin/python scripts/i18n.py           # extract + update + compile (then fill in empty msgstr)
    .venv/bin/python scripts/i18n.py --check   # exit 1 if a string is untranslated or the .mo is stale

The source strings are Chinese (the default language); dashboard/translations/en holds English.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "dashboard"
PO = PKG / "translations" / "en" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "lazy_gettext": None, "_l": None, "ngettext": (1, 2)}


def extract() -> Catalog:
    cat = Catalog(locale="en", domain="messages", project="bbt")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(PKG), METHODS, options_map={"**/templates/**.html": {"extensions": "jinja2.ext.do"}},
            keywords=KEYWORDS):
        cat.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return cat


def load() -> Catalog:
    if not PO.exists():
        return Catalog(locale="en", domain="messages", project="bbt")
    with PO.open("rb") as f:
        return read_po(f, locale="en")


def mo_bytes(cat: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, cat)
    return buf.getvalue()


def messages(mo: bytes) -> dict[Any, Any]:
    """What a compiled catalog translates, without its header (which names the Babel that wrote it)."""
    return {(m.context, m.id): m.string for m in read_mo(io.BytesIO(mo)) if m.id}


def problems() -> list[str]:
    template, cat = extract(), load()
    out = [f"untranslated: {m.id!r}" for m in template if m.id and (m.id not in cat or not cat[m.id].string)]
    if not MO.exists() or messages(MO.read_bytes()) != messages(mo_bytes(cat)):
        out.append(f"{MO.relative_to(ROOT)} is stale: run scripts/i18n.py")
    return out


def update() -> None:
    template, cat = extract(), load()
    cat.update(template, no_fuzzy_matching=True)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as f:
        write_po(f, cat, width=120, omit_header=False, ignore_obsolete=True)
    cat = load()
    MO.write_bytes(mo_bytes(cat))
    missing = [m.id for m in cat if m.id and not m.string]
    print(f"{len(cat)} messages, {len(missing)} untranslated", file=sys.stderr)


if __name__ == "__main__":
    if "--check" in sys.argv:
        issues = problems()
        print("\n".join(issues) or "ok")
        sys.exit(1 if issues else 0)
    update()
