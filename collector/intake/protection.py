"""Antivirus and patch state (protocol 1.2 ``protection`` events): the newest state of each device,
and what is wrong with it (病毒防护, 安全补丁).

:func:`apply_protection` runs at ingest and keeps the newest state per device in
``device_protection``. :func:`problems` is the one owner of the thresholds' meaning: from a state
and the alert rule's options (``protection`` in the school's alert config: ``signature_days``,
``patch_days``, ``update_days``) it names the protection faults. Ages are measured at the time of
the report, not now: a PC switched off for the holidays does not turn "outdated" while it is off;
it reports again within hours of being switched on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Mapping

import protocol
from collector.db import Database
from collector.devices.ingest import EventRow

DAY_S = 86400.0
# fault codes (labels: collector.codes) in the order a page lists them
CODES = ("virus", "av_off", "av_outdated", "patches_pending")
DEFAULTS: dict[str, Any] = {"signature_days": 7, "patch_days": 14, "update_days": 60, "severity": "warning",
                            "severity_threat": "critical"}


@dataclass(frozen=True)
class Problem:
    code: str
    severity: str
    detail: str


def apply_protection(db: Database, row: EventRow) -> None:
    """Keep the event as the device's state unless a newer one is stored (an outbox replayed late)."""
    db.execute("INSERT INTO device_protection (school, device, event_id, t, received, data) VALUES (?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (school, device) DO UPDATE SET event_id = excluded.event_id, t = excluded.t, "
               "received = excluded.received, data = excluded.data WHERE device_protection.t <= excluded.t",
               (row.school, row.device, row.id, row.t, row.received, row.data_text))


def states(db: Database, school: str, since: float | None = None) -> dict[str, dict[str, Any]]:
    """device -> {"t", "received", "data"} of a school (only those stored after ``since``)."""
    sql = "SELECT device, t, received, data FROM device_protection WHERE school = ?"
    args: tuple[Any, ...] = (school,)
    if since is not None:
        sql, args = sql + " AND received > ?", (school, since)
    return {r["device"]: {"t": float(r["t"]), "received": float(r["received"]), "data": json.loads(r["data"])}
            for r in db.query(sql, args)}


def state(db: Database, school: str, device: str, opts: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """One device's newest state with its problems under the rule's options (the school's alert config
    ``rules.protection``, passed by the caller), for its page."""
    rows = db.query("SELECT t, data FROM device_protection WHERE school = ? AND device = ?", (school, device))
    if not rows:
        return None
    data = json.loads(rows[0]["data"])
    return {"t": float(rows[0]["t"]), "data": data, "signature_age_d": signature_age(data, float(rows[0]["t"])),
            "problems": problems(data, float(rows[0]["t"]), opts or {})}


def summaries(db: Database, school: str, opts: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """device -> {"enabled", "reported" (RFC 3339, UTC), "problems": [codes]} for a school's device list."""
    out = {}
    for device, st in states(db, school).items():
        out[device] = {"enabled": bool(st["data"].get("enabled")), "reported": _iso(st["t"]),
                       "problems": [p.code for p in problems(st["data"], st["t"], opts or {})]}
    return out


def _iso(t: float) -> str:
    return protocol.format_time(datetime.fromtimestamp(int(t), UTC))


def _t(data: Mapping[str, Any], key: str) -> float | None:
    try:
        return protocol.parse_time(data.get(key), key).timestamp() if data.get(key) else None
    except protocol.Rejected:
        return None


def signature_age(data: Mapping[str, Any], t: float) -> float | None:
    """Age in days of the virus definitions at the time of the report."""
    age = data.get("signature_age_d")
    if isinstance(age, (int, float)) and not isinstance(age, bool):
        return float(age)
    sig = _t(data, "signatures_t")
    return None if sig is None else max(0.0, (t - sig) / DAY_S)


def problems(data: Mapping[str, Any], t: float, opts: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with one reported state, under the rule's options (defaults: :data:`DEFAULTS`)."""
    o = dict(DEFAULTS, **{k: v for k, v in opts.items() if v is not None})
    sev = str(o["severity"])
    out = []
    threats = data.get("threats") or 0
    if isinstance(threats, (int, float)) and threats > 0:
        names = "、".join(str(n) for n in (data.get("threat_names") or [])[:5])
        out.append(Problem("virus", str(o["severity_threat"]), f"发现 {int(threats)} 个病毒或威胁未清除" +
                           (f"：{names}" if names else "")))
    products = [p for p in data.get("products") or [] if isinstance(p, dict)]
    if not data.get("enabled"):
        names = "、".join(str(p.get("name")) for p in products) or "没有病毒防护软件"
        out.append(Problem("av_off", sev, f"病毒防护未开启（{names}）"))
    age = signature_age(data, t)
    stale = [str(p.get("name")) for p in products if p.get("enabled") and p.get("up_to_date") is False]
    if age is not None and age > float(o["signature_days"]):
        product = data.get("scanner") or "病毒防护软件"
        out.append(Problem("av_outdated", sev, f"病毒库已 {age:.0f} 天未更新（{product}）"))
    elif stale:
        out.append(Problem("av_outdated", sev, f"病毒库不是最新（{'、'.join(stale)}）"))
    out += _patches(data, t, o, sev)
    return out


def _patches(data: Mapping[str, Any], t: float, o: Mapping[str, Any], sev: str) -> list[Problem]:
    pending = data.get("pending_security") or 0
    since = _t(data, "pending_since")
    if isinstance(pending, (int, float)) and pending > 0 and since is not None \
            and t - since > float(o["patch_days"]) * DAY_S:
        return [Problem("patches_pending", sev, f"{int(pending)} 个安全补丁超过 {(t - since) / DAY_S:.0f} 天未安装")]
    last = _t(data, "last_update")
    if last is not None and t - last > float(o["update_days"]) * DAY_S:
        return [Problem("patches_pending", sev, f"安全补丁 {(t - last) / DAY_S:.0f} 天未更新（最近一次安装更新在 "
                                                f"{data.get('last_update', '')[:10]}）")]
    return []
