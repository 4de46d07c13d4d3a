"""Built-in alert rules: pure functions from plain data to alert candidates.

A *state* rule describes a condition that holds now (an open fault, a device offline in a
lesson); its alert resolves by itself when the condition no longer holds. An *event* rule
fires on something that happened (drift, new software); its alert resolves after
``event_ttl_h`` or when someone acknowledges and resolves it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

import protocol
from collector import codes

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Device:
    school: str
    device: str
    klass: str | None = None
    room: str | None = None
    building: str | None = None
    floor: str | None = None
    online: bool = False
    status_reason: str | None = None
    last_seen: float | None = None

    def labels(self) -> dict[str, Any]:
        return {"device": self.device, "class": self.klass, "room": self.room, "building": self.building,
                "floor": self.floor}


@dataclass
class Candidate:
    fingerprint: str
    kind: str
    severity: str
    subject: str
    started: float
    mode: str = "state"
    code: str | None = None
    detail: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    fault_id: int | None = None

    @property
    def device(self) -> str | None:
        return self.labels.get("device")


def _cand(kind: str, dev: Device, severity: str, subject: str, started: float, key: str = "",
          **kw: Any) -> Candidate:
    fp = f"{kind}|{dev.device}|{key}" if key else f"{kind}|{dev.device}"
    return Candidate(fp, kind, severity, subject, started, labels=dev.labels(), **kw)


# -- state rules ---------------------------------------------------------------
def fault_alerts(faults: Iterable[Mapping[str, Any]], devices: Mapping[str, Device]) -> list[Candidate]:
    """One alert per open fault (from an agent, the collector, or a person's 报修)."""
    out = []
    for f in faults:
        dev = devices.get(f["device"]) or Device(f["school"], f["device"])
        out.append(_cand("fault", dev, f["severity"], fault_title(f["code"]), f["opened_t"], f["code"],
                         code=f["code"], detail=f.get("detail"), fault_id=f.get("id")))
    return out


def offline_in_lesson(devices: Iterable[Device], lessons_now: Mapping[str, tuple[float, float]],
                      opts: Mapping[str, Any]) -> list[Candidate]:
    """A device whose class has a lesson now and that is offline (power, network, agent killed)."""
    out = []
    for d in devices:
        if d.klass and d.klass in lessons_now and not d.online:
            start, _ = lessons_now[d.klass]
            why = "断电或断网" if d.status_reason == "lost" else "已关机" if d.status_reason == "shutdown" else "无心跳"
            out.append(_cand("offline_in_lesson", d, opts.get("severity", "warning"), f"上课时间离线（{why}）",
                             max(start, d.last_seen or start)))
    return out


def building_offline(devices: Iterable[Device], opts: Mapping[str, Any], now: float) -> list[Candidate]:
    """Most devices of a building lost together, on more than one floor (one floor is a floor outage);
    its alerts (floors, devices) are inhibited by this one."""
    devices = [d for d in devices if d.building]
    out = []
    for c in floor_offline([Device(d.school, d.device, d.klass, d.room, d.building, "*", d.online, d.status_reason,
                                   d.last_seen) for d in devices], opts, now):
        building = c.labels["building"]
        floors = {d.floor for d in devices if d.building == building and not d.online and d.status_reason == "lost"}
        if len(floors) == 1 and None not in floors:
            continue
        out.append(Candidate(f"building_offline|{building}", "building_offline", c.severity,
                             c.subject.replace("整层", "整栋楼"), c.started, detail=c.detail,
                             labels=dict(c.labels, floor=None)))
    return out


def floor_offline(devices: Iterable[Device], opts: Mapping[str, Any], now: float) -> list[Candidate]:
    """Most devices of one floor lost together (not shut down): a power or network outage."""
    floors: dict[tuple[str | None, str], list[Device]] = defaultdict(list)
    for d in devices:
        if d.floor:
            floors[(d.building, d.floor)].append(d)
    out = []
    for (building, floor), devs in floors.items():
        lost = [d for d in devs if not d.online and d.status_reason == "lost"]
        up = [d for d in devs if d.online]
        if len(lost) < int(opts.get("min_devices", 3)) or len(lost) < float(opts.get("ratio", 0.8)) * (
                len(lost) + len(up)):
            continue
        started = min((d.last_seen or now) for d in lost)
        fp = f"floor_offline|{building or ''}|{floor}"
        labels = {"building": building, "floor": floor, "device": None, "class": None, "room": None}
        out.append(Candidate(fp, "floor_offline", opts.get("severity", "critical"),
                             f"整层 {len(lost)} 台设备同时离线（可能停电或断网）", started, labels=labels,
                             detail=" ".join(sorted(d.device for d in lost))))
    return out


def _hhmm(value: str) -> int:
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def left_on(devices: Iterable[Device], last_lesson_end: Mapping[str, float], local_now: datetime,
            opts: Mapping[str, Any]) -> list[Candidate]:
    """A device still on N minutes after its class's last lesson, or at night (rule: power off after use)."""
    now = local_now.timestamp()
    minute = local_now.hour * 60 + local_now.minute
    night = _hhmm(opts.get("night") or "22:00") <= minute or minute < _hhmm(opts.get("morning") or "06:00")
    after = float(opts.get("after_min", 30)) * 60
    out = []
    for d in devices:
        if not d.online:
            continue
        end = last_lesson_end.get(d.klass or "")
        if night:
            out.append(_cand("left_on", d, opts.get("severity", "info"), "夜间未关机", now))
        elif end is not None and now >= end + after:
            out.append(_cand("left_on", d, opts.get("severity", "info"),
                             f"最后一节课后 {int((now - end) // 60)} 分钟仍未关机", end + after))
    return out


def _after_school(end: float | None, local_now: datetime, opts: Mapping[str, Any]) -> tuple[str, float] | None:
    """(how to say it, since when) when it is night or ``after_min`` past the class's last lesson, else None."""
    now = local_now.timestamp()
    minute = local_now.hour * 60 + local_now.minute
    if _hhmm(opts.get("night") or "22:00") <= minute or minute < _hhmm(opts.get("morning") or "06:00"):
        return "夜间", now
    after = float(opts.get("after_min", 30)) * 60
    if end is not None and now >= end + after:
        return f"最后一节课后 {int((now - end) // 60)} 分钟", end + after
    return None


def projector_left_on(devices: Mapping[str, Device], states: Iterable[Mapping[str, Any]],
                      last_lesson_end: Mapping[str, float], local_now: datetime,
                      opts: Mapping[str, Any]) -> list[Candidate]:
    """A projector reported on (or warming up) after school or at night, by a report younger than
    ``fresh_min`` (rule: 投影机用后关闭, a lamp left on burns its hours)."""
    fresh = float(opts.get("fresh_min", 90)) * 60
    out = []
    for st in states:
        if st.get("power") not in ("on", "warming") or local_now.timestamp() - float(st["t"]) > fresh:
            continue
        dev = devices.get(st["device"]) or Device("", st["device"])
        when = _after_school(last_lesson_end.get(dev.klass or ""), local_now, opts)
        if when is not None:
            out.append(_cand("projector_left_on", dev, opts.get("severity", "warning"), f"{when[0]}投影机未关闭",
                             when[1], code="projector", detail=st.get("address")))
    return out


def projector_lamp(devices: Mapping[str, Device], states: Iterable[Mapping[str, Any]],
                   opts: Mapping[str, Any], now: float) -> list[Candidate]:
    """A projector lamp past ``hours`` (its rated life: replace it before it fails in a lesson)."""
    limit = float(opts.get("hours", 3000))
    out = []
    for st in states:
        hours = st.get("lamp_hours")
        if hours is None or float(hours) < limit:
            continue
        dev = devices.get(st["device"]) or Device("", st["device"])
        out.append(_cand("projector_lamp", dev, opts.get("severity", "info"),
                         f"投影机灯泡已使用 {int(hours)} 小时（超过 {int(limit)} 小时，请准备更换）", float(st["t"]),
                         code="projector", detail=st.get("address")))
    return out


def agent_silent(devices: Iterable[Device], cutoff: float | None, opts: Mapping[str, Any]) -> list[Candidate]:
    """No message from a device for more than ``after_h`` hours of term time (weekends and holidays
    do not count): its last message is older than ``cutoff`` (None: not in term, nothing fires)."""
    if cutoff is None:
        return []
    hours = int(float(opts.get("after_h", 24)))
    return [_cand("agent_silent", d, opts.get("severity", "warning"), f"上课日超过 {hours} 小时没有消息", cutoff)
            for d in devices if d.last_seen is not None and d.last_seen < cutoff]


# -- event rules ---------------------------------------------------------------
def software_alert(dev: Device, data: Mapping[str, Any], t: float, in_lesson: bool,
                   opts: Mapping[str, Any]) -> Candidate:
    name = str(data.get("name") or data.get("exe") or "?")
    action = "已拦截" if data.get("action") == "blocked" else "发现"
    sev = opts.get("severity_in_lesson", "warning") if in_lesson else opts.get("severity", "info")
    when = "上课时" if in_lesson else ""
    return _cand("software_denied", dev, sev, f"{when}{action}违规软件 {name}", t, name.lower(), mode="event",
                 code=str(data.get("rule") or ""), detail=str(data.get("exe") or ""))


def usb_alert(dev: Device, data: Mapping[str, Any], t: float, in_lesson: bool, usb_policy: Mapping[str, Any],
              opts: Mapping[str, Any]) -> Candidate | None:
    """A USB volume not on the school's allow-list (严禁将与教学无关的U盘装入计算机), in a lesson of the
    device's class or outside lessons, each switched on or off by the rule's options."""
    label, vid, pid = str(data.get("label") or ""), str(data.get("vendor_id") or ""), str(data.get("product_id") or "")
    if protocol.usb_allowed(dict(usb_policy), label, vid, pid):
        return None
    if not opts.get("in_lessons" if in_lesson else "off_hours", True):
        return None
    ids = f"{vid}:{pid}" if vid and pid else ""
    name = f"“{label}”" if label else (ids or "（无卷标）")
    sev = opts.get("severity_in_lesson", "warning") if in_lesson else opts.get("severity", "info")
    what = "已阻止" if data.get("blocked") is True else "插入"
    return _cand("usb", dev, sev, f"{'上课时' if in_lesson else ''}{what}未登记的U盘 {name}（严禁与教学无关的U盘）", t,
                 f"{label.casefold()}|{ids}", mode="event", code=ids or "unlisted",
                 detail=" ".join(x for x in (label, ids, f"{data.get('size_mb')} MB" if data.get("size_mb") else "")
                                 if x))


def drift_alert(dev: Device, data: Mapping[str, Any], t: float, opts: Mapping[str, Any]) -> Candidate:
    fld = str(data.get("field"))
    names = {"hostname": "计算机名", "ip": "IP 地址", "mac": "MAC 地址", "workgroup": "工作组",
             "serial": "主机序列号（疑似换机）", "board_serial": "主板序列号（疑似换主板）"}
    return _cand("drift", dev, opts.get("severity", "warning"),
                 f"{names.get(fld, fld)}被改：{data.get('old')} → {data.get('new')}", t, fld, mode="event", code=fld)


def software_names(inventory: Mapping[str, Any] | None) -> set[str]:
    items = (inventory or {}).get("software") or []
    return {str(s.get("name")) for s in items if isinstance(s, dict) and s.get("name")}


def new_software(dev: Device, previous: Mapping[str, Any] | None, current: Mapping[str, Any], t: float,
                 opts: Mapping[str, Any]) -> list[Candidate]:
    """Programs in this inventory that the previous one did not list (none for a first inventory)."""
    if previous is None:
        return []
    added = sorted(software_names(current) - software_names(previous))
    return [_cand("new_software", dev, opts.get("severity", "info"), f"新装软件 {name}", t, name.lower(),
                  mode="event", code=name) for name in added]


def unclean_shutdowns(dev: Device, unclean_times: list[float], t: float, opts: Mapping[str, Any]) -> Candidate | None:
    """``count`` or more power-ons after an unclean shutdown within ``days``."""
    window = float(opts.get("days", 7)) * 86400
    recent = [x for x in unclean_times if t - window <= x <= t]
    if len(recent) < int(opts.get("count", 3)):
        return None
    return _cand("unclean_shutdowns", dev, opts.get("severity", "warning"),
                 f"{int(window // 86400)} 天内 {len(recent)} 次非正常关机", t, mode="event", code="unclean_shutdown")


def usage_below(school: str, week: str, rows: Iterable[Mapping[str, Any]], who: str, t: float,
                opts: Mapping[str, Any], threshold: float) -> list[Candidate]:
    """At the week's end: each teacher/class whose row says ``below_threshold`` (rows as protocol.md §4,
    made by collector.rates.usage, the one owner of the threshold; ``threshold`` only names it in the text)."""
    out = []
    for r in rows:
        rate = r.get("rate")
        if rate is None or not r.get("below_threshold"):
            continue
        name = str(r.get(who))
        label = "教师" if who == "teacher" else "班级"
        out.append(Candidate(f"usage_below|{week}|{who}|{name}", "usage_below", opts.get("severity", "info"),
                             f"{week} {label}{name} 班班通使用率 {rate:.0%}（{r.get('used')}/{r.get('scheduled')}）"
                             f" 低于 {threshold:.0%}", t, mode="event", code=who,
                             labels={"device": None, "class": name if who == "class" else None, "building": None,
                                     "floor": None, "room": None, "teacher": name if who == "teacher" else None}))
    return out


def outside_use(rows: Iterable[Mapping[str, Any]], devices: Mapping[str, Device], t: float,
                opts: Mapping[str, Any]) -> list[Candidate]:
    """课外使用: a device in use for at least ``minutes`` outside its class's lessons on one school day
    (rows as collector.rates.outside_use.day_rows); one alert per device and day."""
    limit = float(opts.get("minutes", 20))
    out = []
    for r in rows:
        minutes = float(r.get("minutes") or 0.0)
        if minutes < limit:
            continue
        dev = devices.get(str(r["device"])) or Device("", str(r["device"]), r.get("class"))
        spans = "、".join(f"{s['start']}–{s['end']}" for s in r.get("spans", []))
        out.append(_cand("outside_use", dev, opts.get("severity", "info"),
                         f"课外使用 {minutes:g} 分钟（不得允许学生单独使用）", t, str(r["date"]),
                         mode="event", code="outside_use", detail=f"{r['date']} {spans}"))
    return out


def fault_title(code: str) -> str:
    """A fault's Chinese name, from the one catalogue (collector.codes)."""
    return codes.fault_label(code)
