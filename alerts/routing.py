"""Routing, grouping, quiet hours, silences and inhibition: pure functions over plain data.

An alert is described by its *labels*: school, kind, code, severity, building, floor, class,
device. Routes are tried in order; the first that matches wins unless it says ``"continue": true``
(as in Alertmanager).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from alerts.rules import SEVERITY_RANK


@dataclass
class Route:
    channels: list[str]
    escalate: list[dict[str, Any]] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    group_wait_s: float = 30
    repeat_interval_min: float = 240


def _match_value(want: Any, have: Any) -> bool:
    if isinstance(want, list):
        return have in want or (have is not None and str(have) in [str(w) for w in want])
    return have == want or (have is not None and str(have) == str(want))


def matches(match: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, want in match.items():
        if key == "min_severity":
            if SEVERITY_RANK.get(labels.get("severity", "info"), 0) < SEVERITY_RANK.get(want, 0):
                return False
        elif not _match_value(want, labels.get(key)):
            return False
    return True


def routes_for(labels: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[Route]:
    out = []
    for r in cfg.get("routes", []):
        if matches(r.get("match", {}), labels):
            out.append(Route(list(r.get("channels", [])), list(r.get("escalate", [])),
                             list(r.get("group_by", cfg.get("group_by", []))),
                             float(r.get("group_wait_s", cfg.get("group_wait_s", 30))),
                             float(r.get("repeat_interval_min", cfg.get("repeat_interval_min", 240)))))
            if not r.get("continue"):
                break
    return out


def group_key(labels: Mapping[str, Any], group_by: Iterable[str]) -> str:
    keys = list(group_by)
    if "fingerprint" in keys or not keys:
        return str(labels.get("fingerprint"))
    return "|".join(f"{k}={labels.get(k) if labels.get(k) is not None else ''}" for k in ["school", *keys])


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def in_quiet(local: datetime, quiet: Mapping[str, str] | None) -> bool:
    if not quiet:
        return False
    start, end, now = _minutes(quiet["start"]), _minutes(quiet["end"]), local.hour * 60 + local.minute
    if start == end:
        return False
    return start <= now < end if start < end else (now >= start or now < end)


def quiet_end(local: datetime, quiet: Mapping[str, str]) -> datetime:
    """The next moment the quiet hours end (e.g. 07:00 the next morning)."""
    end = _minutes(quiet["end"])
    candidate = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def held_by_quiet(severity: str, local: datetime, quiet: Mapping[str, str] | None) -> bool:
    """In quiet hours only critical goes out; everything else waits for the morning."""
    return severity != "critical" and in_quiet(local, quiet)


def silenced_until(labels: Mapping[str, Any], silences: Iterable[Mapping[str, Any]], now: float) -> float | None:
    """The end of the latest active silence (or maintenance window) matching the alert, else None."""
    ends = [float(s["ends"]) for s in silences
            if float(s["starts"]) <= now < float(s["ends"]) and matches(s.get("matchers") or {}, labels)]
    return max(ends) if ends else None


def inhibited(labels: Mapping[str, Any], sources: Iterable[Mapping[str, Any]],
              rules: Iterable[Mapping[str, Any]]) -> bool:
    """True when an open source alert (e.g. floor_offline) covers this alert's place."""
    for rule in rules:
        if labels.get("kind") == rule.get("source_kind"):
            continue
        equal = list(rule.get("equal", []))
        for src in sources:
            if src.get("kind") != rule.get("source_kind") or src.get("school") != labels.get("school"):
                continue
            same = all(str(src.get(k) or "") == str(labels.get(k) or "") for k in equal)
            if same and any(src.get(k) for k in equal):
                return True
    return False
