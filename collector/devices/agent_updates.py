"""Agent self-update, the server's side: a wheel offered per school with a rollout percentage.

``offer`` copies the wheel into the data directory (``agent-updates/<school>/``), stores what the
agents need and publishes the policy again; the policy then carries ``agent_update``, an offer signed
on its own with the school's key (``signed_offer``): version, SHA-256, the URL path the dashboard
serves it from, the percentage. The agent's side is agent/selfupdate.py.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import protocol
from collector.db import Database
from common import signing
from common.errors import BbtError

URL_PREFIX = "/agent-updates"
# {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl (PEP 427)
_WHEEL = re.compile(r"\A(?P<dist>[A-Za-z0-9_.]+)-(?P<version>[0-9A-Za-z.+_]+)(-[0-9][^-]*)?-[^-]+-[^-]+-[^-]+\.whl\Z")


class UpdateError(BbtError):
    pass


def wheel_version(path: Path) -> str:
    m = _WHEEL.match(path.name)
    if not m:
        raise UpdateError(f"{path.name}: not a wheel file name (name-version-python-abi-platform.whl)")
    return m.group("version")


def folder(data_dir: Path, school: str) -> Path:
    return data_dir / "agent-updates" / school


def offer(db: Database, data_dir: Path, school: str, wheel: Path, percent: float, who: str | None = None,
          now: float | None = None) -> dict[str, Any]:
    """Store the wheel and the offer (replacing the school's previous one); the policy is published again."""
    from collector.devices.policy import republish

    if not protocol.valid_id(school):
        raise UpdateError(f"school {school!r} must match {protocol.ID_PATTERN}")
    if not 0 <= percent <= 100:
        raise UpdateError(f"--percent {percent:g} must be from 0 to 100")
    if not wheel.is_file():
        raise UpdateError(f"{wheel}: no such file")
    version = wheel_version(wheel)
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as z:
            if not any(n.endswith(".dist-info/WHEEL") for n in z.namelist()):
                raise UpdateError(f"{wheel.name}: no .dist-info/WHEEL inside: not a wheel")
    except zipfile.BadZipFile:
        raise UpdateError(f"{wheel.name}: not a zip file, so not a wheel") from None
    data = wheel.read_bytes()
    dest = folder(data_dir, school)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / (wheel.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest / wheel.name)
    now = time.time() if now is None else now
    with db.transaction():
        db.execute("INSERT INTO agent_updates (school, version, filename, sha256, size, percent, created, created_by) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school) DO UPDATE SET version = excluded.version, "
                   "filename = excluded.filename, sha256 = excluded.sha256, size = excluded.size, "
                   "percent = excluded.percent, created = excluded.created, created_by = excluded.created_by",
                   (school, version, wheel.name, hashlib.sha256(data).hexdigest(), len(data), float(percent), now,
                    who))
        republish(db, school, now)
    return current(db, school) or {}


def withdraw(db: Database, school: str) -> bool:
    from collector.devices.policy import republish

    with db.transaction():
        n = db.execute("DELETE FROM agent_updates WHERE school = ?", (school,))
        if n:
            republish(db, school)
    return bool(n)


def current(db: Database, school: str) -> dict[str, Any] | None:
    rows = db.query("SELECT * FROM agent_updates WHERE school = ?", (school,))
    if not rows:
        return None
    r = rows[0]
    pct = float(r["percent"])
    return {"school": school, "version": r["version"], "filename": r["filename"], "sha256": r["sha256"],
            "size": int(r["size"]), "percent": int(pct) if pct.is_integer() else pct, "created": r["created"],
            "url": f"{URL_PREFIX}/{school}/{r['filename']}"}


def signed_offer(db: Database, school: str, key: Any) -> dict[str, Any] | None:
    """What goes into the policy as ``agent_update``, signed with the school's key (None: no offer)."""
    o = current(db, school)
    if o is None:
        return None
    return signing.sign({"version": o["version"], "sha256": o["sha256"], "url": o["url"], "percent": o["percent"],
                         "school": school}, key)


def wheel_path(data_dir: Path, school: str, filename: str) -> Path | None:
    """The stored wheel the dashboard serves (None unless it is this school's current offer's file)."""
    if not protocol.valid_id(school) or "/" in filename or "\\" in filename or not filename.endswith(".whl"):
        return None
    path = folder(data_dir, school) / filename
    return path if path.is_file() else None


