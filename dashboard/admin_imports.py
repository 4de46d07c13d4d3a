"""Admin imports (timetable, bell, devices, calendar...): upload, preview with row-level errors, apply.

The preview runs the real importer inside a transaction that is rolled back, so what it
reports (rows accepted, or the first bad line and why) is exactly what applying would do.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from bbt.errors import BbtError
from collector import imports
from collector.db import Database
from collector.tables import _read_csv, _read_xlsx
from dashboard import audit, get_db
from dashboard.access import allow
from dashboard.admin import actor, bp
from dashboard.auth import client_ip
from dashboard.overview import schools_known

PREVIEW_ROWS = 50
ALLOWED = (".csv", ".xlsx")


class _Rollback(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def dry_run(db: Database, kind: str, school: str, path: str) -> int:
    """Run the importer and roll back: the number of rows it would apply (raises its error otherwise)."""
    try:
        with db.transaction():
            raise _Rollback(imports.run_import(db, kind, school, path))
    except _Rollback as r:
        return r.count


def raw_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    p = Path(path)
    try:
        header, body = _read_xlsx(p) if p.suffix.lower() == ".xlsx" else _read_csv(p)
    except BbtError:
        return [], []
    return [str(h) for h in header], [(n, [str(c) for c in cells]) for n, cells in body[:PREVIEW_ROWS]]


def upload_dir() -> str:
    d = current_app.config.get("UPLOAD_DIR") or os.path.join(tempfile.gettempdir(), "bbt-uploads")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return str(d)


def _pending() -> dict[str, Any] | None:
    p = session.get("import")
    if not p or not re.fullmatch(r"[A-Za-z0-9_-]{10,64}", str(p.get("token", ""))):
        return None
    path = os.path.join(upload_dir(), p["token"] + p["suffix"])
    return dict(p, path=path) if os.path.exists(path) else None


def _discard() -> None:
    p = _pending()
    session.pop("import", None)
    if p:
        Path(p["path"]).unlink(missing_ok=True)


@bp.get("/imports")
@allow("admin")
def imports_form() -> Any:
    return render_template("admin/imports.html", kinds=sorted(imports.IMPORTERS), schools=schools_known(),
                           preview=None)


@bp.post("/imports/preview")
@allow("admin")
def imports_preview() -> Any:
    _discard()
    kind = request.form.get("kind", "")
    school = request.form.get("school", "").strip()
    f = request.files.get("file")
    if kind not in imports.IMPORTERS or not school or f is None or not f.filename:
        flash(_("请选择导入类型、学校和文件。"), "error")
        return redirect(url_for("admin.imports_form"))
    suffix = Path(f.filename).suffix.lower()
    if suffix not in ALLOWED:
        flash(_("只能导入 .csv 或 .xlsx 文件。"), "error")
        return redirect(url_for("admin.imports_form"))
    token = secrets.token_urlsafe(16)
    path = os.path.join(upload_dir(), token + suffix)
    with open(path, "wb") as out:
        shutil.copyfileobj(f.stream, out)
    # keep the uploaded name for messages, the random name on disk
    named = os.path.join(upload_dir(), token + "-" + re.sub(r"[^\w.-]", "_", Path(f.filename).name))
    shutil.copyfile(path, named)
    error, count, bad_line = None, 0, None
    try:
        count = dry_run(get_db(), kind, school, named)
    except BbtError as e:
        error = str(e)
        m = re.search(r"line (\d+)", error)
        bad_line = int(m.group(1)) if m else None
    finally:
        Path(named).unlink(missing_ok=True)
    header, rows = raw_rows(path)
    if error:
        Path(path).unlink(missing_ok=True)
    else:
        session["import"] = {"token": token, "suffix": suffix, "kind": kind, "school": school,
                             "filename": Path(f.filename).name, "count": count}
    preview = {"kind": kind, "school": school, "filename": Path(f.filename).name, "error": error,
               "count": count, "header": header, "rows": rows, "bad_line": bad_line}
    return render_template("admin/imports.html", kinds=sorted(imports.IMPORTERS), schools=schools_known(),
                           preview=preview), (400 if error else 200)


@bp.post("/imports/apply")
@allow("admin")
def imports_apply() -> Any:
    p = _pending()
    if p is None:
        flash(_("没有待导入的文件，请重新上传。"), "error")
        return redirect(url_for("admin.imports_form"))
    named = os.path.join(upload_dir(), p["token"] + "-" + re.sub(r"[^\w.-]", "_", p["filename"]))
    shutil.copyfile(p["path"], named)
    try:
        n = imports.run_import(get_db(), p["kind"], p["school"], named)
    except BbtError as e:
        flash(_("导入失败，没有任何数据被修改：%(e)s", e=str(e)), "error")
        return redirect(url_for("admin.imports_form"))
    finally:
        Path(named).unlink(missing_ok=True)
        _discard()
    audit.record(get_db(), actor(), "import." + p["kind"], p["school"], p["filename"], client_ip(), rows=n)
    flash(_("已导入 %(n)d 行（%(kind)s，%(school)s）。", n=n, kind=p["kind"], school=p["school"]), "ok")
    for w in imports.import_warnings(get_db(), p["kind"], p["school"]):
        flash(_("注意：%(w)s", w=w), "error")
    return redirect(url_for("admin.imports_form"))
