"""Admin: alert routing (alerts.config) as a form — channels (WeCom / DingTalk / email), who gets
what (routes), quiet hours — with the school's JSON document kept as an advanced view.

Both build the same document and go through the one validator (alerts.config.validate, via save);
its errors carry the field they are about, shown next to that field in the user's language.
Channel URLs hold secrets: the page shows them masked ("wecombot://***"); a masked URL left as it
is keeps the stored one (also when the channel is renamed in the form).
"""
from __future__ import annotations

import copy
import json
import re
from typing import Any, Mapping

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from alerts import config as alert_config
from dashboard import audit, get_db
from dashboard.access import allow
from dashboard.admin import actor, bp
from dashboard.auth import client_ip
from dashboard.overview import schools_known

EXAMPLE = {
    "channels": {"电教组": {"url": "wecombot://BOT_KEY", "person": "张老师"},
                 "电工": {"url": "dingtalk://TOKEN", "person": "李师傅"}},
    "routes": [{"match": {"min_severity": "warning"}, "channels": ["电教组"]},
               {"match": {"kind": "fault", "building": "A楼"}, "channels": ["电工"]}],
    "quiet_hours": {"start": "22:00", "end": "07:00"},
    "rules": {"left_on": {"enabled": True, "after_min": 30}},
}
KIND_LABELS = {"fault": _l("设备故障"), "offline_in_lesson": _l("上课时离线"), "floor_offline": _l("整层离线"),
               "building_offline": _l("整栋楼离线"), "left_on": _l("夜间未关机"),
               "unclean_shutdowns": _l("多次非正常关机"), "software": _l("违规软件"), "drift": _l("设备信息变更"),
               "new_software": _l("新安装软件"), "usage_below": _l("使用率未达标"),
               "agent_silent": _l("监控程序长时间无消息"), "outside_use": _l("课外使用")}
SEVERITY_CHOICES = {"info": _l("提示及以上（全部）"), "warning": _l("警告及以上"), "critical": _l("仅严重")}
ERRORS = {
    "url_missing": _l("请填写通道地址"),
    "url_invalid": _l("不是有效的通知地址（如 wecombot://机器人KEY、dingtalk://TOKEN、mailto://用户:密码@邮件服务器）"),
    "positive_integer": _l("须为正整数"),
    "hhmm": _l("请填写 HH:MM 格式的时间，如 22:00"),
    "unknown_channel": _l("没有名为“%(name)s”的通道"),
    "no_channel": _l("请至少填写一个通道"),
    "severity": _l("级别须为 提示、警告 或 严重"),
    "name_missing": _l("请填写通道名称"),
    "name_taken": _l("通道名称重复"),
}
BLANK_ROWS = 2
SPLIT = re.compile(r"[,，、;；\s]+")


class FormError(alert_config.ConfigError):
    """A problem only the form can have (a channel row without a name), named by its form field."""


def keep_secrets(new: dict[str, Any], stored: dict[str, Any], renamed: Mapping[str, str] | None = None) -> dict:
    """Masked channel URLs ("kind://***") take the stored URL of the same channel (or the one renamed) back."""
    old = stored.get("channels") or {}
    for name, ch in (new.get("channels") or {}).items():
        was = (renamed or {}).get(name, name)
        if isinstance(ch, dict) and str(ch.get("url", "")).endswith("://***") and was in old:
            ch["url"] = old[was].get("url")
    return new


def form_rows(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored document as the form's rows (URLs masked), with blank rows to add to."""
    shown = alert_config.redacted(raw)
    channels = [{"name": n, "was": n, "url": c.get("url", ""), "person": c.get("person", ""),
                 "rate": c.get("rate_per_min") or ""} for n, c in (shown.get("channels") or {}).items()
                if isinstance(c, dict)]
    channels += [{"name": "", "was": "", "url": "", "person": "", "rate": ""}] * BLANK_ROWS
    routes = []
    for i, r in enumerate(raw.get("routes") or []):
        m = r.get("match") or {}
        routes.append({"was": i, "kind": m.get("kind", ""), "min_severity": m.get("min_severity", ""),
                       "building": m.get("building", ""), "channels": "、".join(r.get("channels") or []),
                       "continue": bool(r.get("continue")),
                       "other": {k: v for k, v in m.items() if k not in ("kind", "min_severity", "building")}})
    routes += [{"was": "", "kind": "", "min_severity": "", "building": "", "channels": "", "continue": False,
                "other": {}}] * BLANK_ROWS
    quiet = raw.get("quiet_hours", alert_config.DEFAULT_CONFIG["quiet_hours"])
    return {"channels": channels, "routes": routes,
            "quiet": {"on": quiet is not None, "start": (quiet or {}).get("start", "22:00"),
                      "end": (quiet or {}).get("end", "07:00")}}


def _count(form: Mapping[str, str], key: str) -> int:
    raw = form.get(key) or "0"
    return min(200, int(raw)) if raw.isdigit() else 0


def _channels(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str], dict[str, int]]:
    out: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    rows: dict[str, int] = {}
    for i in range(_count(form, "ch-count")):
        f = {k: (form.get(f"ch-{i}-{k}") or "").strip() for k in ("name", "was", "url", "person", "rate")}
        if form.get(f"ch-{i}-delete") or not any(f[k] for k in ("name", "url", "person", "rate")):
            continue
        if not f["name"]:
            raise FormError("a channel needs a name", f"ch-{i}-name", "name_missing")
        if f["name"] in out:
            raise FormError(f"channel {f['name']!r} is named twice", f"ch-{i}-name", "name_taken")
        ch: dict[str, Any] = {"url": f["url"]}
        if f["person"]:
            ch["person"] = f["person"]
        if f["rate"]:
            ch["rate_per_min"] = int(f["rate"]) if f["rate"].isdigit() else f["rate"]  # the validator says no
        out[f["name"]], rows[f["name"]] = ch, i
        if f["was"]:
            renamed[f["name"]] = f["was"]
    return out, renamed, rows


def _routes(form: Mapping[str, str], stored: list[Any]) -> tuple[list[dict[str, Any]], list[int]]:
    out, rows = [], []
    for i in range(_count(form, "rt-count")):
        f = {k: (form.get(f"rt-{i}-{k}") or "").strip() for k in ("was", "kind", "min_severity", "building",
                                                                   "channels")}
        if form.get(f"rt-{i}-delete") or not any(f[k] for k in ("kind", "min_severity", "building", "channels")):
            continue
        was = int(f["was"]) if f["was"].isdigit() and int(f["was"]) < len(stored) else None
        route = copy.deepcopy(stored[was]) if was is not None and isinstance(stored[was], dict) else {}
        match = {k: v for k, v in (route.get("match") or {}).items() if k not in ("kind", "min_severity", "building")}
        match.update({k: f[k] for k in ("kind", "min_severity", "building") if f[k]})
        route["match"] = match
        route["channels"] = [n for n in SPLIT.split(f["channels"]) if n]
        if form.get(f"rt-{i}-continue"):
            route["continue"] = True
        else:
            route.pop("continue", None)
        out.append(route)
        rows.append(i)
    return out, rows


def from_form(form: Mapping[str, str], stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The document the form describes (the stored one's other keys kept) and where each part came from."""
    doc = copy.deepcopy(stored)
    channels, renamed, ch_rows = _channels(form)
    routes, rt_rows = _routes(form, list(stored.get("routes") or []))
    doc["channels"], doc["routes"] = channels, routes
    if not channels:
        doc.pop("channels")
    if not routes:
        doc.pop("routes")
    doc["quiet_hours"] = {"start": (form.get("quiet-start") or "").strip(),
                          "end": (form.get("quiet-end") or "").strip()} if form.get("quiet-on") else None
    if doc["quiet_hours"] == stored.get("quiet_hours", alert_config.DEFAULT_CONFIG["quiet_hours"]) \
            and "quiet_hours" not in stored:
        doc.pop("quiet_hours")  # the default left as it is: not written into the document
    return keep_secrets(doc, stored, renamed), {"channels": ch_rows, "routes": rt_rows}


def field_of(e: alert_config.ConfigError, where: dict[str, Any]) -> str | None:
    """The form field a validator error is about (None: the whole form)."""
    field = e.field or ""
    m = re.match(r"channels\.(.+)\.(url|rate_per_min)$", field)
    if m and m[1] in where["channels"]:
        return f"ch-{where['channels'][m[1]]}-{'url' if m[2] == 'url' else 'rate'}"
    m = re.match(r"routes\[(\d+)\](?:\.(channels|match\.min_severity|match))?", field)
    if m and int(m[1]) < len(where["routes"]):
        return f"rt-{where['routes'][int(m[1])]}-{'min_severity' if m[2] == 'match.min_severity' else 'channels'}"
    if field == "quiet_hours":
        return "quiet"
    return field if field.startswith(("ch-", "rt-")) else None


def error_text(e: alert_config.ConfigError) -> str:
    if e.code not in ERRORS:
        return str(e)
    text = str(ERRORS[e.code])
    return text % e.params if e.params else text


def _save(school: str, doc: dict[str, Any], how: str) -> Any:
    db = get_db()
    alert_config.save(db, school, doc)  # validates: raises ConfigError, nothing stored
    audit.record(db, actor(), "alerts.config", school, None, client_ip(), via=how,
                 channels=sorted((doc.get("channels") or {}).keys()), routes=len(doc.get("routes") or []))
    flash(_("告警通知设置已保存。"), "ok")
    return redirect(url_for("admin.routing", school=school))


def _json_doc(text: str, stored: dict[str, Any]) -> dict[str, Any]:
    try:
        doc = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise alert_config.ConfigError(_("不是有效的 JSON：第 %(l)d 行第 %(c)d 列：%(m)s", l=e.lineno, c=e.colno,
                                         m=e.msg)) from None
    if not isinstance(doc, dict):
        raise alert_config.ConfigError(_("设置须为一个 JSON 对象 {…}"))
    return keep_secrets(doc, stored)


@bp.route("/routing", methods=["GET", "POST"])
@allow("admin")
def routing() -> Any:
    """The form (mode=form) or the JSON document (mode=json): either is validated and stored whole."""
    schools = schools_known()
    school = request.values.get("school") or (schools[0] if schools else "")
    db = get_db()
    stored = alert_config.load_raw(db, school) if school else {}
    rows, text = form_rows(stored), json.dumps(alert_config.redacted(stored), ensure_ascii=False, indent=2)
    errors: dict[str, str] = {}
    mode = request.form.get("mode") or ("json" if "config" in request.form else "form")
    if request.method == "POST" and school:
        where: dict[str, Any] = {"channels": {}, "routes": []}
        try:
            if mode == "json":
                text = request.form.get("config", "")
                return _save(school, _json_doc(text, stored), "json")
            doc, where = from_form(request.form, stored)
            return _save(school, doc, "form")
        except alert_config.ConfigError as e:
            field = field_of(e, where) if mode == "form" else None
            errors[field or ("json" if mode == "json" else "form")] = error_text(e)
            if mode == "form":
                rows = posted_rows(request.form)
    return render_template("admin/routing.html", school=school, schools=schools, text=text, rows=rows,
                           errors=errors, mode=mode, kinds=KIND_LABELS, severities=SEVERITY_CHOICES,
                           channel_names=[c["name"] for c in rows["channels"] if c["name"]],
                           example=json.dumps(EXAMPLE, ensure_ascii=False, indent=2),
                           defaults=json.dumps(alert_config.DEFAULT_CONFIG, ensure_ascii=False, indent=2)), \
        (400 if errors else 200)


def posted_rows(form: Mapping[str, str]) -> dict[str, Any]:
    """The rows as posted, to show the form again with the user's values next to the error."""
    def get(prefix: str, i: int, k: str) -> str:
        return form.get(f"{prefix}-{i}-{k}") or ""
    return {"channels": [{k: get("ch", i, k) for k in ("name", "was", "url", "person", "rate")}
                         for i in range(_count(form, "ch-count"))],
            "routes": [{**{k: get("rt", i, k) for k in ("was", "kind", "min_severity", "building", "channels")},
                        "continue": bool(get("rt", i, "continue")), "other": {}}
                       for i in range(_count(form, "rt-count"))],
            "quiet": {"on": bool(form.get("quiet-on")), "start": form.get("quiet-start") or "",
                      "end": form.get("quiet-end") or ""}}
