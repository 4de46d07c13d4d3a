"""Admin imports (timetable, bell, devices, calendar...): templates, upload, preview of the difference, apply.

The preview reads the file and compares it with the store (collector.school.imports.plan_import): it
shows the rows it understood, what would be added, removed and changed, and the warnings, in
the page's language, and writes nothing. Applying recomputes the plan in one transaction and
refuses if the store changed since the preview (the user confirms what they saw).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from collector.school import imports
from collector.school.import_columns import KINDS
from collector.school.import_errors import ImportError_
from collector.school.import_plan import Plan
from collector.school.import_report import describe, encoding_note
from collector.school.import_templates import template_name, template_xlsx
from collector.school.readers import SUFFIXES, read_book
from common.errors import BbtError
from dashboard import audit, get_db
from dashboard.access import allow
from dashboard.admin import actor, bp
from dashboard.auth import client_ip
from dashboard.overview import schools_known

PREVIEW_ROWS = 50
DIFF_ROWS = 200
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class _Changed(Exception):
    pass


def lang() -> str:
    return "zh" if str(get_locale() or "zh").startswith("zh") else "en"


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


def _page(preview: dict[str, Any] | None) -> str:
    return render_template("admin/imports.html", kinds=list(imports.IMPORTERS), schools=schools_known(),
                           preview=preview, suffixes=",".join(SUFFIXES))


@bp.get("/imports")
@allow("admin")
def imports_form() -> Any:
    return _page(None)


@bp.get("/imports/template/<kind>.xlsx")
@allow("admin")
def imports_template(kind: str) -> Any:
    if kind not in KINDS:
        abort(404)
    return Response(template_xlsx(kind), mimetype=XLSX_MIME, headers={
        "Content-Disposition": f"attachment; filename={kind}-template.xlsx; "
                               f"filename*=UTF-8''{_quote(template_name(kind))}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)


def raw_rows(path: str, filename: str, sheet: str | None) -> list[tuple[int, list[str]]]:
    """The file's cells as read (the sheet of the error, else the first), to show the bad line in place."""
    try:
        book = read_book(path, filename)
    except BbtError:
        return []
    s = next((x for x in book.sheets if x.title == sheet), book.sheets[0] if book.sheets else None)
    return [(i + 1, r) for i, r in enumerate(s.rows[:PREVIEW_ROWS])] if s else []


def plan_view(plan: Plan) -> dict[str, Any]:
    """What the preview shows of a plan, in the page's language."""
    lg = lang()
    understood = [(f"{r.sheet} {r.cell}" if r.cell else str(r.line),
                   describe(plan.kind, k, plan.parsed.records[k], lg))
                  for k, r in list(plan.parsed.rows.items())[:PREVIEW_ROWS]]
    return {
        "summary": plan.summary(), "encoding": encoding_note(plan, lg), "new_school": plan.new_school,
        "warnings": [w.render(lg) for w in plan.warnings],
        "added": [describe(plan.kind, k, v, lg) for k, v in plan.added[:DIFF_ROWS]],
        "removed": [describe(plan.kind, k, v, lg) for k, v in plan.removed[:DIFF_ROWS]],
        "changed": [(describe(plan.kind, k, o, lg), describe(plan.kind, k, n, lg))
                    for k, o, n in plan.changed[:DIFF_ROWS]],
        "rows": understood, "more_rows": max(0, len(plan.parsed.rows) - PREVIEW_ROWS), "replace": plan.replace,
    }


@bp.post("/imports/preview")
@allow("admin")
def imports_preview() -> Any:
    _discard()
    kind = request.form.get("kind", "")
    school = request.form.get("school", "").strip()
    replace, create = bool(request.form.get("replace")), bool(request.form.get("create_school"))
    f = request.files.get("file")
    if kind not in KINDS or not school or f is None or not f.filename:
        flash(_("请选择导入类型、学校和文件。"), "error")
        return redirect(url_for("admin.imports_form"))
    filename = Path(f.filename).name
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        flash(_("只能导入 .csv、.xlsx 或 .xls 文件。"), "error")
        return redirect(url_for("admin.imports_form"))
    token = secrets.token_urlsafe(16)
    path = os.path.join(upload_dir(), token + suffix)
    with open(path, "wb") as out:
        shutil.copyfileobj(f.stream, out)
    preview: dict[str, Any] = {"kind": kind, "school": school, "filename": filename, "error": None,
                               "replace": replace, "create_school": create}
    try:
        plan = imports.plan_import(get_db(), kind, school, path, replace=replace, create_school=create,
                                   display_name=filename)
    except ImportError_ as e:
        preview.update(error=e.render(lang()), bad_line=e.where.line, raw=raw_rows(path, filename, e.where.sheet))
    except BbtError as e:
        preview.update(error=str(e), bad_line=None)
    else:
        preview.update(plan_view(plan), count=plan.count)
        session["import"] = {"token": token, "suffix": suffix, "kind": kind, "school": school,
                             "filename": filename, "replace": replace, "create_school": create,
                             "fingerprint": plan.fingerprint()}
    if preview["error"]:
        Path(path).unlink(missing_ok=True)
    return _page(preview), (400 if preview["error"] else 200)


@bp.post("/imports/apply")
@allow("admin")
def imports_apply() -> Any:
    p = _pending()
    if p is None:
        flash(_("没有待导入的文件，请重新上传。"), "error")
        return redirect(url_for("admin.imports_form"))
    db = get_db()
    try:
        with db.transaction():
            plan = imports.plan_import(db, p["kind"], p["school"], p["path"], replace=p["replace"],
                                       create_school=p["create_school"], display_name=p["filename"])
            if plan.fingerprint() != p["fingerprint"]:
                raise _Changed()
            n = imports.apply_plan(db, plan)
    except _Changed:
        flash(_("预览之后数据已有变化，没有导入；请重新预览。"), "error")
        return redirect(url_for("admin.imports_form"))
    except ImportError_ as e:
        flash(_("导入失败，没有任何数据被修改：%(e)s", e=e.render(lang())), "error")
        return redirect(url_for("admin.imports_form"))
    finally:
        _discard()
    audit.record(db, actor(), "import." + p["kind"], p["school"], p["filename"], client_ip(), rows=n,
                 **plan.summary())
    flash(_("已导入 %(n)d 行（%(kind)s，%(school)s）。", n=n, kind=p["kind"], school=p["school"]), "ok")
    for w in imports.import_warnings(get_db(), p["kind"], p["school"]):
        flash(_("注意：%(w)s", w=w), "error")
    return redirect(url_for("admin.imports_form"))
