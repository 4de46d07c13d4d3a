"""Enrolment over HTTP (collector.intake.enrolment): ``POST /api/v1/enrol`` for the agents (no login: the
school's enrolment secret is the credential; refused attempts are audited and rate-limited per
address), and the admin page that shows the secret, rotates it and revokes or resets PCs."""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from collector.intake import credentials, enrolment
from collector.intake.credentials import CredentialError
from collector.intake.enrolment import EnrolError
from dashboard import get_db
from dashboard.access import PUBLIC, allow
from dashboard.admin import actor
from dashboard.admin import bp as admin_bp
from dashboard.auth import client_ip
from dashboard.overview import schools_known

bp = Blueprint("enrol", __name__, url_prefix="/api/v1")


def _limit() -> enrolment.FailureLimit:
    ext = current_app.extensions
    if "bbt_enrol_limit" not in ext:
        ext["bbt_enrol_limit"] = enrolment.FailureLimit()
    return ext["bbt_enrol_limit"]  # type: ignore[no-any-return]


@bp.post("/enrol")
@allow(PUBLIC)
def enrol() -> Any:
    if current_app.config.get("EXTERNAL_BROKER"):
        return jsonify(error="enrolment_unavailable", message="this server uses an external broker (Mosquitto): "
                       "PCs get their credentials from bbt deploy mosquitto / bbt deploy certs"), 409
    ip = client_ip()
    limit = _limit()
    if limit.blocked(ip):
        return jsonify(error="too_many_attempts", message="too many refused enrolments from this address; "
                                                          "wait 10 minutes"), 429
    try:
        answer = enrolment.enrol(get_db(), request.get_json(silent=True), ip,
                                 current_app.config.get("BROKER_CA_PEM"))
    except EnrolError as e:
        limit.failed(ip)
        return jsonify(error="enrolment_refused", message=e.message), e.status
    return jsonify(answer)


# -- the admin page ------------------------------------------------------------------------------

def _addresses() -> tuple[str, str]:
    """The broker and server addresses as the PCs see them: this page's host name."""
    host = request.host.rsplit(":", 1)[0] if request.host else "SERVER"
    scheme = "mqtts" if current_app.config.get("BROKER_CA_PEM") else "mqtt"
    return f"{scheme}://{host}:{current_app.config.get('MQTT_PORT', 1883)}", request.host_url.rstrip("/")


@admin_bp.route("/enrolment", methods=["GET", "POST"])
@allow("admin")
def enrolment_page() -> Any:
    schools = schools_known()
    school = request.values.get("school") or (schools[0] if schools else "")
    db = get_db()
    if request.method == "POST" and school:
        try:
            _act(db, school, request.form)
        except (EnrolError, CredentialError) as e:
            flash(str(e), "error")
        return redirect(url_for("admin.enrolment_page", school=school))
    row = enrolment.current(db, school) if school else None
    return render_template("admin/enrolment.html", school=school, schools=schools, secret=row,
                           expired=bool(row and row["expires"] <= time.time()),
                           expires_text=time.strftime("%Y-%m-%d %H:%M", time.localtime(row["expires"])) if row else "",
                           ini=enrolment.agent_ini(school, row["secret"], *_addresses()) if row else "",
                           command=enrolment.run_command(school, row["secret"], *_addresses()) if row else "",
                           devices=credentials.list_enrolled(db, school) if school else [])


def _act(db: Any, school: str, form: Any) -> None:
    """Rotate, revoke or reset (each audited by collector.intake.enrolment / collector.intake.credentials, as the
    admin)."""
    action, device = form.get("action"), (form.get("device") or "").strip()
    if action == "rotate":
        try:
            days = float(form.get("days") or enrolment.DEFAULT_DAYS)
        except ValueError:
            raise EnrolError(400, _("有效天数必须是数字")) from None
        enrolment.rotate(db, school, actor(), days)
        flash(_("已生成新的注册密钥，旧密钥立即失效。"), "ok")
    elif action == "revoke":
        credentials.revoke(db, school, device, actor())
        flash(_("已吊销 %(d)s：它的凭据立即失效，连接会被断开。", d=device), "ok")
    elif action == "reset":
        credentials.reset(db, school, device, actor())
        flash(_("已重置 %(d)s：它可以用注册密钥重新注册。", d=device), "ok")
    else:
        abort(400)
