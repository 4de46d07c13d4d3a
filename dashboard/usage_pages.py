"""Usage pages: the teacher and class tables for a week, the term or any dates (from/to, 本月),
trend, lesson drill-down, XLSX and CSV export of a week, a month or a range, and the print view
for the staff meeting. Rates come from collector.rates.usage (issue 4);
who sees which rows is the one rule of dashboard.access.scoped_rates, as in the API."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Callable

from flask import Blueprint, abort, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from alerts.rules import fault_title
from collector.devices.registry import school_tz
from collector.lessons import teacher_groups
from collector.lessons.school_calendar import iso_week, week_days
from collector.rates import usage
from dashboard import cache, get_db, usage_table
from dashboard.access import SCHOOL_WIDE, Scope, allow, current_scope, scoped_rates
from dashboard.api_usage import RATE_ROLES, rate_rows, report_file, report_for_request, request_span
from dashboard.overview import page_school

bp = Blueprint("usage", __name__, url_prefix="/usage")
TREND_WEEKS = 8
TREND_TTL_S = 60.0  # the trend chart may be a minute old; the table itself is always current
CACHE_S = 600.0  # the table's rows (and the teachers' groups), keyed by the data version (see data_version)
STATUS = {"used": _l("已使用"), "not_used": _l("未使用"), "device_off": _l("设备未开机"), "faulty": _l("设备故障"),
          "no_device": _l("无设备"), "pending": _l("未结束"), "elsewhere": _l("不在本教室"), "away": _l("外出上课"),
          "swapped": _l("调课")}


def today(school: str) -> date:
    return usage.today_at(get_db(), school)


def chosen_week(school: str) -> str:
    week = request.args.get("week") or iso_week(today(school))
    try:
        week_days(week)
    except ValueError as e:
        abort(400, description=str(e))
    return week


def shift(week: str, weeks: int) -> str:
    return iso_week(week_days(week)[0] + timedelta(days=7 * weeks))


def chosen_period() -> str:
    if request.args.get("from") or request.args.get("to"):
        return "range"
    return "term" if request.args.get("period") == "term" else "week"


def month_span(school: str) -> tuple[str, str]:
    """本月: the first and last day of this month at the school."""
    first = today(school).replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first.isoformat(), (nxt - timedelta(days=1)).isoformat()


def table_rows(scope: Scope, school: str, week: str, by: str, period: str) -> tuple[list[dict[str, Any]], str]:
    """Rows for the table and a label for the period (the week, the dates, or the term's name)."""
    if period == "range":
        span = request_span(school)
        assert span is not None
        return rate_rows(school, week, by, scope.user), str(_l("%(a)s 至 %(b)s", a=span[0].isoformat(),
                                                            b=span[1].isoformat()))
    if period != "term":
        return rate_rows(school, week, by, scope.user), week
    db = get_db()
    term = usage.term_rates(db, school, week_days(week)[0], by)
    start, end = date.fromisoformat(term["start"]), date.fromisoformat(term["end"])
    rows = scoped_rates(scope.user, by, lambda: term["rows"],
                        lambda klass: usage.range_rates(db, school, start, end, by, classes=[klass]))
    return rows, str(term["term"])


def trend_series(scope: Scope, school: str, week: str, by: str, keys: list[str]) -> dict[str, Any]:
    """Weekly rates of the school (or of the user's own rows) over the last weeks, for the chart."""
    weeks = [shift(week, -i) for i in range(TREND_WEEKS - 1, -1, -1)]
    series: list[dict[str, Any]] = []
    if scope.school_wide:
        total = [usage.overall_rate(rate_rows(school, w, "class", scope.user)) for w in weeks]
        series.append({"name": str(_l("全校")), "data": total})
    else:
        per = usage.trend_of(weeks, {w: rate_rows(school, w, by, scope.user) for w in weeks}, by)
        for k in keys[:6]:
            series.append({"name": k, "data": per.get(k, [None] * len(weeks))})
    return {"weeks": weeks, "series": series}


def data_version(school: str, week: str, period: str) -> tuple[Any, ...]:
    """collector.rates.usage.data_version of this week, the term so far or the dates (pure: no writes)."""
    days = week_days(week)
    start, end = days[0], days[-1]
    if period == "term":
        _name, start, end = usage.term_span(get_db(), school, start)
    elif period == "range":
        start, end = request_span(school) or (start, end)
    return usage.data_version(get_db(), school, start, end, week)


def _page(by: str) -> Any:
    scope = current_scope()
    school = page_school(scope)
    if not school:
        return render_template("usage/table.html", school="", by=by, week="", period="week")
    week = chosen_week(school)
    period = chosen_period()
    span = request_span(school) if period == "range" else None  # 400 on bad dates
    try:
        view = usage_table.parse_view(request.args, usage_table.GROUPS if by == "teacher" else ("", "grade"))
    except usage_table.ViewError as e:
        abort(400, description=str(e))
    u = scope.user
    key = (get_db().url, school, week, by, period, span, u.role, u.name, u.klass,
           data_version(school, week, period))

    def compute() -> dict[str, Any]:
        rows, label = table_rows(scope, school, week, by, period)
        for r in rows:
            r["pct"] = f"{r['rate'] * 100:.1f}%"
        return {"rows": rows, "label": label, "threshold": usage.threshold(get_db(), school)}
    data = cache.cached(("rates",) + key, CACHE_S, compute)
    table = usage_table.build(data["rows"], view, by, group_lookup(school, by, view.group, key))
    span_args = {"from": span[0].isoformat(), "to": span[1].isoformat()} if span else {"week": week}
    worst_first = [r[by] for r in sorted(data["rows"], key=lambda r: (r["rate"], r[by]))]
    trend = cache.cached(("trend", get_db().url, school, week, by, u.role, u.name, u.klass), TREND_TTL_S,
                         lambda: trend_series(scope, school, week, by, worst_first))
    base: dict[str, Any] = {"school": school, **({"week": week, "period": "term"} if period == "term" else span_args)}
    return render_template("usage/table.html", school=school, by=by, week=week, table=table, view=view,
                           base_args=base, page_url=lambda args: url_for(request.endpoint or "", **base, **args),
                           period=period, label=data["label"], threshold=data["threshold"],
                           trend=trend, prev=shift(week, -1), next=shift(week, 1), span_args=span_args,
                           month=month_span(school), range_from=span[0].isoformat() if span else "",
                           range_to=span[1].isoformat() if span else "")


def group_lookup(school: str, by: str, group: str, version: tuple[Any, ...]) -> Callable[[str], str | None]:
    """A row key's heading when grouping: a class's or teacher's grade (年级), a teacher's 教研组 (cached
    with the rows: an import marks days to recompute, which changes the data version)."""
    if not group:
        return lambda _k: None
    if by == "class":
        return teacher_groups.grade_of
    db = get_db()
    found = cache.cached(("teacher_" + group,) + version, CACHE_S,
                         lambda: teacher_groups.teacher_grades(db, school) if group == "grade"
                         else teacher_groups.teacher_groups(db, school))
    return lambda k: found.get(k)


@bp.get("/teachers")
@allow(*RATE_ROLES)
def teachers() -> Any:
    return _page("teacher")


@bp.get("/classes")
@allow(*SCHOOL_WIDE, "class_teacher")
def classes() -> Any:
    return _page("class")


def correction_rows(school: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """A published week's corrections for the pages: when (school time), who, the entry's name, changes."""
    tz = school_tz(get_db(), school)
    return [dict(c, when=datetime.fromtimestamp(c["t"], tz).strftime("%m-%d %H:%M"),
                 title=fault_title(c.get("code") or "")) for c in report.get("corrections") or []]


def chosen_day() -> date | None:
    raw = request.args.get("date")
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        abort(400, description=f"date {raw!r} is not YYYY-MM-DD")


@bp.get("/lessons")
@allow(*RATE_ROLES)
def lessons() -> Any:
    """Drill-down: every lesson of a week for one teacher or one class, with its in-use minutes."""
    scope = current_scope()
    school = page_school(scope)
    day = chosen_day()
    week = iso_week(day) if day else chosen_week(school)
    teacher, klass = request.args.get("teacher"), request.args.get("class")
    if scope.user.role == "teacher":
        teacher, klass = scope.user.name, None
    if not teacher and not klass and not day:
        abort(400, description="give teacher, class or date")
    if klass and not scope.sees_class(klass):
        abort(403)  # a class teacher sees a teacher's lessons only inside their own class (filtered below)
    db = get_db()
    # usage.week_lessons, not day_lessons: that annotates every lesson of the school each day (slow)
    rows = [r for r in usage.week_lessons(db, school, week, teacher, klass)
            if scope.sees_lesson(r["class"], r["teacher"]) and (day is None or r["date"] == day.isoformat())]
    settings = usage.settings(db, school)
    return render_template("usage/lessons.html", school=school, week=week, teacher=teacher, klass=klass, rows=rows,
                           status=STATUS, min_minutes=settings["min_use_minutes"], prev=shift(week, -1),
                           next=shift(week, 1), used=sum(1 for r in rows if r["used"]),
                           counted=sum(1 for r in rows if r["counted"]), day=day,
                           **lesson_pages.mark_context(scope, school, week, rows))


@bp.get("/export.xlsx")
@allow(*SCHOOL_WIDE)
def export() -> Any:
    """The week's, month's (month=) or dates' (from=, to=) report as XLSX."""
    return report_file(report_for_request(page_school(current_scope())), "xlsx")


@bp.get("/export.csv")
@allow(*SCHOOL_WIDE)
def export_csv() -> Any:
    """The same as CSV (UTF-8 with BOM, Chinese headers; lang=en for English ones)."""
    return report_file(report_for_request(page_school(current_scope())), "csv")


@bp.get("/print")
@allow(*SCHOOL_WIDE)
def print_view() -> Any:
    """The week (or month=, or from= to=) on paper for the staff meeting (一周一汇总，一周一公布) or the
    monthly check: both tables, below-threshold first."""
    rep = report_for_request(page_school(current_scope()))
    return render_template("usage/print.html", rep=rep, corrections=correction_rows(rep["school"], rep),
                           teachers=sorted(rep["teachers"], key=lambda r: (r["rate"], r["teacher"])),
                           classes=sorted(rep["classes"], key=lambda r: (r["rate"], r["class"])))


from dashboard import lesson_pages, usage_publish  # noqa: E402,F401  (marking lessons, 公布: routes on bp)
