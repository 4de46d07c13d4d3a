"""Short Chinese messages, place first: "3楼 302班 投影无信号 (display_missing) 08:05"."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from collector import codes
from collector.lessons.attribution import NEVER_EXCUSES

MAX_BYTES = 2000  # WeCom bot text messages: 2048 bytes
SEVERITY_TAG = {"critical": " 【紧急】", "warning": "", "info": " 【提示】"}


def hhmm(t: float | None, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%H:%M") if t is not None else "--:--"


def _floor(value: Any) -> str:
    s = str(value)
    return s if s.endswith(("楼", "层", "F", "f")) else f"{s}楼"


def _klass(value: Any) -> str:
    s = str(value)
    return s if s.endswith("班") or not s[-1:].isdigit() else f"{s}班"


def place(a: Mapping[str, Any]) -> str:
    """Where: building, floor, class (or room), else the device id."""
    parts = []
    if a.get("building"):
        parts.append(str(a["building"]))
    if a.get("floor"):
        parts.append(_floor(a["floor"]))
    if a.get("class"):
        parts.append(_klass(a["class"]))
    elif a.get("room"):
        parts.append(str(a["room"]))
    if not parts or (a.get("device") and not (a.get("class") or a.get("room"))):
        if a.get("device"):
            parts.append(str(a["device"]))
    return " ".join(parts) or "全校"


def line(a: Mapping[str, Any], tz: ZoneInfo) -> str:
    code = f" ({a['code']})" if a.get("code") else ""
    return f"{place(a)} {a['subject']}{code} {hhmm(a['opened'], tz)}"


def firing_line(a: Mapping[str, Any], tz: ZoneInfo) -> str:
    return line(a, tz) + SEVERITY_TAG.get(a["severity"], "")


def resolved_line(a: Mapping[str, Any], tz: ZoneInfo) -> str:
    return f"{line(a, tz)} 已恢复 {hhmm(a.get('resolved_t'), tz)}"


def escalation_line(a: Mapping[str, Any], tz: ZoneInfo, now: float) -> str:
    return f"{firing_line(a, tz)} 【{int((now - a['opened']) // 60)} 分钟未确认】"


def _fit(lines: Sequence[str], head: str, tail: str, max_bytes: int) -> str:
    """As many lines as fit in max_bytes; the rest is counted, never silently left out."""
    body: list[str] = []
    size = len(head.encode()) + len(tail.encode()) + 40
    for i, ln in enumerate(lines):
        n = len(ln.encode()) + 1
        if size + n > max_bytes:
            body.append(f"…另有 {len(lines) - i} 条")
            break
        body.append(ln)
        size += n
    return "\n".join(x for x in (head, *body, tail) if x)


def compose(items: Sequence[tuple[str, Mapping[str, Any]]], tz: ZoneInfo, now: float,
            ack_link: Callable[[list[int]], str | None], max_bytes: int = MAX_BYTES,
            review_link: Callable[[list[int]], str | None] | None = None) -> str:
    """One message for a group of (notice kind, alert) pairs. ``review_link`` (fault ids -> signed URL)
    adds the link to review the register entries of firing fault alerts (影响上课 / 误报)."""
    lines = []
    firing_ids = []
    fault_ids = sorted({int(a["fault_id"]) for kind, a in items if kind != "resolved" and a.get("kind") == "fault"
                        and a.get("fault_id") is not None and a.get("code") not in NEVER_EXCUSES})
    for kind, a in items:
        if kind == "resolved":
            lines.append(resolved_line(a, tz))
        elif kind == "escalation":
            lines.append(escalation_line(a, tz, now))
            firing_ids.append(int(a["id"]))
        else:
            lines.append(firing_line(a, tz))
            if a.get("state") == "firing":
                firing_ids.append(int(a["id"]))
    head = ""
    if len(items) > 1:
        kinds = Counter(codes.alert_kind(a["kind"]).zh for _, a in items)
        places = {place(a) for _, a in items}
        where = next(iter(places)) if len(places) == 1 else _common_place([a for _, a in items])
        head = f"{where} {len(items)} 条：" + "、".join(f"{k}{n}" for k, n in kinds.most_common(3))
    link = ack_link(sorted(set(firing_ids))) if firing_ids else None
    tail = f"收到请点：{link}" if link else ""
    review = review_link(fault_ids) if review_link and fault_ids else None
    if review:
        tail = "\n".join(x for x in (tail, f"是否影响上课（核实）：{review}") if x)
    return _fit(lines, head, tail, max_bytes)


def _common_place(alerts: Sequence[Mapping[str, Any]]) -> str:
    for keys in (("building", "floor"), ("building",)):
        vals = {tuple(a.get(k) for k in keys) for a in alerts}
        if len(vals) == 1 and any(next(iter(vals))):
            return place({k: v for k, v in zip(keys, next(iter(vals)), strict=True)})
    return "多处"
