"""An import plan in words (pure): one line per added, removed or changed row, in Chinese or English.

The CLI prints ``plan_lines(plan, "en")``; the import page shows ``describe`` of each row.
"""
from __future__ import annotations

from typing import Any

from collector.lessons.timetable import hhmm
from collector.school.import_plan import Plan
from collector.school.readers import ENCODING_NOTE

WEEKDAYS_ZH = "一二三四五六日"
WEEKS_ZH = {"all": "", "odd": "（单周）", "even": "（双周）"}
WEEKS_EN = {"all": "", "odd": " (odd weeks)", "even": " (even weeks)"}
CAL_ZH = {"holiday": "放假", "workday": "上课（调休）", "exam": "考试"}


def _opt(*parts: Any) -> str:
    return " ".join(str(p) for p in parts if p)


def describe(kind: str, key: tuple[Any, ...], value: tuple[Any, ...], lang: str = "zh") -> str:
    zh = lang == "zh"
    if kind == "devices":
        extra = _opt(*value[1:])
        return f"{key[0]} → {value[0]}" + ((f"（{extra}）" if zh else f" ({extra})") if extra else "")
    if kind == "timetable":
        klass, wd, period, weeks = key
        extra = _opt(*value[2:])  # room, 教研组
        if zh:
            return (f"{klass} 星期{WEEKDAYS_ZH[wd - 1]} 第{period}节{WEEKS_ZH[weeks]} {value[1]} {value[0]}"
                    + (f"（{extra}）" if extra else ""))
        return f"{klass} weekday {wd} period {period}{WEEKS_EN[weeks]}: {value[1]}, {value[0]}" + \
            (f" ({extra})" if extra else "")
    if kind == "bell":
        vf, period = key
        since = "" if vf == "0001-01-01" else (f"，{vf} 起" if zh else f", from {vf}")
        sched = "" if value[0] == "default" else f" {value[0]}"
        head = f"第{period}节" if zh else f"period {period}"
        return f"{head} {hhmm(value[1])}-{hhmm(value[2])}{sched}{since}"
    if kind == "substitutions":
        d, klass, period = key
        teacher = value[0] or "-"
        return f"{d} {klass} 第{period}节 {teacher}" if zh else f"{d} {klass} period {period}: {teacher}"
    if kind == "assets":
        from collector.school.assets import ITEMS, STATES

        item, room, building, model, serial = value[:5]
        state = STATES.get(value[9], value[9]) if zh else value[9]
        return f"{key[0]} {ITEMS.get(item, item) if zh else item} {_opt(building, room)} {_opt(model, serial)} {state}"
    if key[0] == "term":
        return f"学期 {value[0]}：{key[1]} 至 {value[1]}" if zh else f"term {value[0]}: {key[1]} to {value[1]}"
    kind_text = CAL_ZH.get(value[0], value[0]) if zh else value[0]
    follows = ""
    if value[1]:
        follows = f"，按星期{WEEKDAYS_ZH[value[1] - 1]}课表" if zh else f", follows weekday {value[1]}"
    return f"{key[1]} {kind_text}{follows}"


def encoding_note(plan: Plan, lang: str = "zh") -> str | None:
    if plan.encoding is None:
        return None
    zh, en = ENCODING_NOTE[plan.encoding]
    return f"编码：{zh}" if lang == "zh" else f"encoding: {en}"


def plan_lines(plan: Plan, lang: str = "en", limit: int = 20) -> list[str]:
    """The summary line, then + added, - removed, ~ changed (at most ``limit`` of each), then warnings."""
    s = plan.summary()
    if lang == "zh":
        out = [f"{plan.file}：{plan.count} 行；新增 {s['added']}，删除 {s['removed']}，修改 {s['changed']}，"
               f"不变 {s['unchanged']}"]
    else:
        out = [f"{plan.file}: {plan.count} rows; {s['added']} added, {s['removed']} removed, "
               f"{s['changed']} changed, {s['unchanged']} unchanged"]
    note = encoding_note(plan, lang)
    if note:
        out.append(note)
    groups: list[tuple[str, list[str]]] = [
        ("+", [describe(plan.kind, k, v, lang) for k, v in plan.added]),
        ("-", [describe(plan.kind, k, v, lang) for k, v in plan.removed]),
        ("~", [f"{describe(plan.kind, k, o, lang)} => {describe(plan.kind, k, n, lang)}"
               for k, o, n in plan.changed]),
    ]
    for sign, lines in groups:
        out.extend(f"  {sign} {x}" for x in lines[:limit])
        if len(lines) > limit:
            more = len(lines) - limit
            out.append(f"  {sign} …另有 {more} 行" if lang == "zh" else f"  {sign} ... and {more} more")
    prefix = "警告" if lang == "zh" else "warning"
    out.extend(f"{prefix}: {w.render(lang)}" for w in plan.warnings)
    return out
