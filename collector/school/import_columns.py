"""The columns of every import kind (protocol.md §2) and the header names a school may use for them.

One table: a column's canonical (English) name, its Chinese label (templates, messages) and the
other header names accepted for it. KINDS lists each kind's required and optional columns, in
template order. Headers are matched after half-width conversion, lower-casing and dropping spaces
and a trailing "(...)" note, so "班级", "Class", "班 级" and "星期（1-7）" all match.
"""
from __future__ import annotations

import re

from collector.school.readers import halfwidth

# canonical name: (Chinese label, other accepted headers)
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "device": ("设备", ("设备名", "设备编号", "设备号", "设备id", "电脑", "计算机名", "主机名", "终端")),
    "class": ("班级", ("班", "班级名称", "班名")),
    "room": ("教室", ("教室号", "房间", "房间号")),
    "building": ("楼", ("楼栋", "教学楼", "楼宇")),
    "floor": ("楼层", ("层",)),
    "projector": ("投影机", ("投影机地址", "投影机ip", "投影仪", "投影仪地址", "一体机", "大屏")),
    "period": ("节次", ("节", "第几节", "课节")),
    "start": ("开始", ("开始时间", "上课时间", "上课")),
    "end": ("结束", ("结束时间", "下课时间", "下课")),
    "schedule": ("作息", ("作息表", "作息名称", "季节")),
    "valid_from": ("启用日期", ("生效日期", "起用日期", "valid from")),
    "weekday": ("星期", ("周几", "星期几", "礼拜")),
    "teacher": ("教师", ("老师", "任课教师", "任课老师", "授课教师", "代课教师", "姓名")),
    "subject": ("科目", ("学科", "课程", "课程名称")),
    "weeks": ("单双周", ("周次", "单/双周")),
    "date": ("日期", ()),
    "kind": ("类型", ("种类",)),
    "follows_weekday": ("按星期", ("按星期几上课", "按周几上课", "补星期", "follows weekday")),
    "term": ("学期", ("学期名称",)),
    "note": ("备注", ("说明",)),
    "asset": ("资产编号", ("资产号", "编号", "固定资产编号", "资产编码")),
    "item": ("品类", ("设备类型", "设备名称", "名称", "类别")),
    "model": ("型号", ("规格型号", "规格")),
    "serial": ("序列号", ("sn", "出厂编号", "序列号(sn)")),
    "maker": ("品牌", ("厂家", "生产厂家", "制造商")),
    "purchase_date": ("购置日期", ("购买日期", "采购日期", "购入日期")),
    "warranty_end": ("保修截止", ("保修到期", "保修期至", "保修截止日期")),
    "supplier": ("供应商", ("供货商", "销售商")),
    "state": ("状态", ("使用状态", "设备状态")),
    "group": ("教研组", ("学科组", "教研室", "组别", "teacher group")),
}

# kind: (required columns, optional columns)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "devices": (("device", "class"), ("room", "building", "floor", "projector")),
    "bell": (("period", "start", "end"), ("schedule", "valid_from")),
    "timetable": (("class", "weekday", "period", "teacher", "subject"), ("weeks", "room", "group")),
    "substitutions": (("date", "class", "period", "teacher"), ("subject",)),
    "calendar": (("date", "kind"), ("follows_weekday", "term", "note")),
    "assets": (("asset", "item", "room"), ("building", "model", "serial", "maker", "purchase_date", "warranty_end",
                                        "supplier", "state", "device", "note")),
}

KIND_LABELS = {"devices": "设备", "bell": "作息时间", "timetable": "课表", "substitutions": "代课",
               "calendar": "校历", "assets": "设备清单"}


def _key(header: str) -> str:
    h = halfwidth(header).strip().lower()
    h = re.sub(r"[(（].*?[)）]$", "", h)
    return re.sub(r"[\s_*:：]", "", h)


_ALIASES: dict[str, str] = {}
for _name, (_zh, _others) in COLUMNS.items():
    for _h in (_name, _zh, *_others):
        _ALIASES[_key(_h)] = _name


def canonical(header: str) -> str | None:
    """The canonical column a header names, or None for an unknown header ("" for an empty one)."""
    if not header.strip():
        return ""
    return _ALIASES.get(_key(header))


def label(column: str, lang: str = "zh") -> str:
    if lang == "zh" and column in COLUMNS:
        return COLUMNS[column][0]
    return column

