"""Admin: alert routing (alerts.config) — rules, channels (WeCom / DingTalk / email), routes, quiet hours.

Edited as the school's JSON document. Channel URLs hold secrets: the page shows them masked
("wecombot://***"); a masked URL left as it is keeps the stored one.
"""
from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

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


def keep_secrets(new: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Masked channel URLs ("kind://***") take the stored URL of the same channel back."""
    old = stored.get("channels") or {}
    for name, ch in (new.get("channels") or {}).items():
        if isinstance(ch, dict) and str(ch.get("url", "")).endswith("://***") and name in old:
            ch["url"] = old[name].get("url")
    return new


@bp.route("/routing", methods=["GET", "POST"])
@allow("admin")
def routing() -> Any:
    schools = schools_known()
    school = request.values.get("school") or (schools[0] if schools else "")
    db = get_db()
    error = None
    text = json.dumps(alert_config.redacted(alert_config.load_raw(db, school)) if school else {}, ensure_ascii=False,
                      indent=2)
    if request.method == "POST" and school:
        text = request.form.get("config", "")
        try:
            doc = json.loads(text or "{}")
            if not isinstance(doc, dict):
                raise alert_config.ConfigError("the configuration must be a JSON object")
            doc = keep_secrets(doc, alert_config.load_raw(db, school))
            alert_config.save(db, school, doc)
        except json.JSONDecodeError as e:
            error = _("不是有效的 JSON：第 %(l)d 行第 %(c)d 列：%(m)s", l=e.lineno, c=e.colno, m=e.msg)
        except alert_config.ConfigError as e:
            error = str(e)
        else:
            audit.record(db, actor(), "alerts.config", school, None, client_ip(),
                         channels=sorted((doc.get("channels") or {}).keys()), routes=len(doc.get("routes") or []))
            flash(_("告警通知设置已保存。"), "ok")
            return redirect(url_for("admin.routing", school=school))
    return render_template("admin/routing.html", school=school, schools=schools, text=text, error=error,
                           example=json.dumps(EXAMPLE, ensure_ascii=False, indent=2),
                           defaults=json.dumps(alert_config.DEFAULT_CONFIG, ensure_ascii=False, indent=2)), \
        (400 if error else 200)
