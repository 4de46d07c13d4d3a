"""`bbt report ...`: the weekly usage report, the daily patrol record, publishing, usage settings."""
from __future__ import annotations

import sys
from datetime import date
from typing import Any, Optional

import click

from bbt.cli import db_option, open_db

FORMATS = ("json", "csv", "xlsx", "html")


def _week_days(week: str) -> list:
    from collector.lessons.school_calendar import week_days

    try:
        return week_days(week)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _parse_day(day: str) -> date:
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter(f"{day!r} is not a date YYYY-MM-DD") from None


def _check_school(db: Any, school: str) -> None:
    if not db.query("SELECT 1 AS x FROM schools WHERE school = ?", (school,)):
        raise click.ClickException(f"no school {school!r} in the store (import its devices and timetable first)")


def _refresh(db: Any, school: str, days: list) -> None:
    """Compute the days whose stored figures are stale, showing progress on stderr (in memory: a report
    is a read and never writes; the report then finds them in collector.rates.usage_rollup's cache)."""
    from collector.rates import usage

    with click.progressbar(days, label=f"计算 {school} 使用情况 / computing", file=sys.stderr,
                           show_pos=True) as bar:
        for d in bar:
            usage.rollup_rows(db, school, d, d)


def _emit(data: Any, out: Optional[str], binary: bool = False) -> None:
    if out:
        from pathlib import Path

        if binary:
            Path(out).write_bytes(data)
        else:
            Path(out).write_bytes(data.encode("utf-8"))  # as is: no newline translation of the CSV's CRLF
        click.echo(f"wrote {out}", err=True)
    elif binary:
        sys.stdout.buffer.write(data)
    else:
        click.echo(data, nl=not data.endswith("\n"))


out_option = click.option("--out", default=None, help="write to this file (default: standard output; xlsx "
                          "needs it unless redirected)")
lang_option = click.option("--lang", type=click.Choice(("zh", "en")), default="zh", show_default=True,
                           help="CSV headers: zh (Chinese, for Excel) or en (English keys, for scripts)")


def _write_report(rep: dict, fmt: str, out: Optional[str], lang: str) -> None:
    """A report (week, month or range) in one format to --out or standard output."""
    from collector.rates import usage_export

    if fmt == "xlsx":
        if not out and sys.stdout.isatty():
            raise click.UsageError("--format xlsx needs --out FILE (or redirect standard output)")
        _emit(usage_export.to_xlsx(rep), out, binary=True)
    elif fmt == "csv":
        _emit(usage_export.to_csv(rep, lang), out)
    else:
        _emit({"json": usage_export.to_json, "html": usage_export.to_html}[fmt](rep), out)


def register(main: click.Group) -> None:
    @main.group()
    def report() -> None:
        """Usage reports: weekly summary (一周一汇总), daily patrol record (巡课登记), publishing."""

    @report.command("week")
    @click.argument("week")
    @click.option("--school", required=True)
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
    @out_option
    @lang_option
    @db_option
    def report_week(week: str, school: str, fmt: str, out: Optional[str], lang: str, db_url: Optional[str]) -> None:
        """The weekly report of ISO week WEEK (e.g. 2026-W48): rates per teacher and class."""
        from collector.rates.usage_report import weekly_report

        db = open_db(db_url)
        days = _week_days(week)
        _check_school(db, school)
        from collector.rates.usage import published

        if published(db, school, week) is None:
            _refresh(db, school, days)
        rep = weekly_report(db, school, week)
        _write_report(rep, fmt, out, lang)

    @report.command("day")
    @click.argument("day")
    @click.option("--school", required=True)
    @click.option("--format", "fmt", type=click.Choice(("json", "html", "xlsx")), default="json", show_default=True)
    @click.option("--out", default=None, help="write to this file (default: standard output)")
    @db_option
    def report_day(day: str, school: str, fmt: str, out: Optional[str], db_url: Optional[str]) -> None:
        """The patrol record (巡课登记) of DAY (YYYY-MM-DD): every lesson and its status."""
        import json

        from collector.rates import usage_export
        from collector.rates.usage_report import make_patrol

        d = _parse_day(day)
        db = open_db(db_url)
        _check_school(db, school)
        rec = make_patrol(db, school, d)
        if fmt == "xlsx":
            if not out and sys.stdout.isatty():
                raise click.UsageError("--format xlsx needs --out FILE (or redirect standard output)")
            _emit(usage_export.patrol_xlsx(rec), out, binary=True)
        elif fmt == "html":
            _emit(usage_export.patrol_html(rec), out)
        else:
            _emit(json.dumps(rec, ensure_ascii=False, indent=1), out)

    @report.command("publish")
    @click.argument("week")
    @click.option("--school", required=True)
    @db_option
    def report_publish(week: str, school: str, db_url: Optional[str]) -> None:
        """Publish (freeze) the report of WEEK (一周一公布); a published week keeps its figures."""
        from collector.rates.usage_report import publish_week, review_warning

        db = open_db(db_url)
        _check_school(db, school)
        _refresh(db, school, _week_days(week))
        rep = publish_week(db, school, week, "cli")
        low = [r["teacher"] for r in rep["teachers"] if r["below_threshold"]]
        click.echo(f"published {school} {week}: {len(rep['teachers'])} teachers, {len(low)} below the threshold")
        warning = review_warning(rep)
        if warning:  # the week is published anyway (一周一公布); reviews later show as corrections
            click.echo(f"warning: {warning} (bbt faults list --school {school} --review pending)", err=True)

    register_term(report)
    register_range(report)

    @report.command("settings")
    @click.option("--school", required=True)
    @click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
                  help="min_use_minutes, threshold, exclude_faulty, heartbeat_s, publish_weekly, "
                       "patrol_after_minutes, not_in_classroom_subjects")
    @db_option
    def report_settings(school: str, pairs: tuple, db_url: Optional[str]) -> None:
        """Show or change a school's usage settings."""
        from collector.lessons import usage_settings

        db = open_db(db_url)
        changes = {}
        for p in pairs:
            key, sep, value = p.partition("=")
            if not sep:
                raise click.BadParameter(f"{p!r} is not KEY=VALUE")
            changes[key.strip()] = value.strip()
        current = usage_settings.update(db, school, changes) if changes else usage_settings.get(db, school)
        for k, v in current.items():
            click.echo(f"{k} = {v}")


def register_term(report: click.Group) -> None:
    @report.command("term")
    @click.argument("day")
    @click.option("--school", required=True)
    @click.option("--by", type=click.Choice(("teacher", "class")), default="teacher", show_default=True)
    @click.option("--format", "fmt", type=click.Choice(("json", "csv")), default="json", show_default=True)
    @click.option("--out", default=None, help="write to this file (default: standard output)")
    @lang_option
    @db_option
    def report_term(day: str, school: str, by: str, fmt: str, out: Optional[str], lang: str,
                    db_url: Optional[str]) -> None:
        """Rates over the term containing DAY (YYYY-MM-DD), up to today (学期汇总)."""
        import json
        from datetime import timedelta

        from collector.rates import usage, usage_export

        d = _parse_day(day)
        db = open_db(db_url)
        _check_school(db, school)
        name, start, end = usage.term_span(db, school, d)
        _refresh(db, school, [start + timedelta(days=i) for i in range((end - start).days + 1)])
        rows = usage.range_rates(db, school, start, end, by)
        if fmt == "json":
            _emit(json.dumps({"term": name, "start": start.isoformat(), "end": end.isoformat(), "rows": rows},
                             ensure_ascii=False, indent=1), out)
            return
        _emit(usage_export.rates_csv([(by, by, rows)], lang), out)


def register_range(report: click.Group) -> None:
    def run(school: str, span: tuple, month: Optional[str], fmt: str, out: Optional[str], lang: str,
            db_url: Optional[str]) -> None:
        from datetime import timedelta

        from collector.rates.usage_report import range_report

        start, end = span
        db = open_db(db_url)
        _check_school(db, school)
        _refresh(db, school, [start + timedelta(days=i) for i in range((end - start).days + 1)])
        _write_report(range_report(db, school, start, end, month=month), fmt, out, lang)

    @report.command("range")
    @click.argument("start", metavar="FROM")
    @click.argument("end", metavar="TO")
    @click.option("--school", required=True)
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
    @out_option
    @lang_option
    @db_option
    def report_range(start: str, end: str, school: str, fmt: str, out: Optional[str], lang: str,
                     db_url: Optional[str]) -> None:
        """Rates and lessons from FROM to TO (YYYY-MM-DD, both included), e.g. for the monthly check."""
        from collector.rates.usage_report import parse_range

        try:
            span = parse_range(start, end)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        run(school, span, None, fmt, out, lang, db_url)

    @report.command("month")
    @click.argument("month")
    @click.option("--school", required=True)
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
    @out_option
    @lang_option
    @db_option
    def report_month(month: str, school: str, fmt: str, out: Optional[str], lang: str,
                     db_url: Optional[str]) -> None:
        """The month MONTH (YYYY-MM, e.g. 2026-11): 教导处每月教学常规检查."""
        from collector.rates.usage_report import parse_month

        try:
            span = parse_month(month)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        run(school, span, month, fmt, out, lang, db_url)
