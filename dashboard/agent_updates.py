"""The agent packages offered for self-update (collector.devices.agent_updates), served to the PCs.

Public like the enrolment endpoint: a package is no secret, and the agent installs it only when its
SHA-256 equals the one in the offer its school's key signed (agent/selfupdate.py).
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, send_file

from collector.devices import agent_updates
from collector.intake.broker_tls import data_dir
from dashboard.access import PUBLIC, allow

bp = Blueprint("agent_updates", __name__, url_prefix=agent_updates.URL_PREFIX)


@bp.get("/<school>/<filename>")
@allow(PUBLIC)
def wheel(school: str, filename: str) -> Any:
    path = agent_updates.wheel_path(data_dir(current_app.config.get("BBT_DB")), school, filename)
    if path is None:
        abort(404)
    return send_file(path, mimetype="application/zip", as_attachment=True, download_name=filename)
