"""Attribution, calendar and timetable as pure functions (no store, no broker)."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.lessons.attribution import (
    Ev,
    Fault,
    Lesson,
    attribute,
    heartbeat_intervals,
    in_use_intervals,
    merge,
    overlap_seconds,
    session_intervals,
)
from collector.lessons.school_calendar import Term, default_term, official, plan_day, week_days, week_parity
from collector.lessons.timetable import BellSet, SchoolModel, Slot, lessons_on
from collector.rates.usage import rates_of

TZ = ZoneInfo("Asia/Shanghai")
M = 60.0


def start(t: float, sid: str = "a") -> Ev:
    return Ev(t, "session", {"state": "start", "session_id": sid})


def end(a: float, b: float, sid: str = "a") -> Ev:
    iso = lambda x: datetime.fromtimestamp(x, TZ).isoformat()  # noqa: E731
    return Ev(b, "session", {"state": "end", "session_id": sid, "start": iso(a), "end": iso(b), "active_s": b - a})


def hb(t: float, in_use: bool) -> Ev:
    return Ev(t, "heartbeat", {"in_use": in_use})


def lesson(a: float, b: float, teacher: str = "王", klass: str = "一班") -> Lesson:
    return Lesson("2026-11-23", klass, 1, teacher, "数学", a, b, "08:00", "08:40")


def test_ended_session_counts_from_its_end_event_even_without_start() -> None:
    assert session_intervals([end(100 * M, 130 * M)]) == [(100 * M, 130 * M)]
    assert in_use_intervals([start(100 * M), end(100 * M, 130 * M)]) == [(100 * M, 130 * M)]


def test_open_session_lasts_to_the_last_in_use_heartbeat() -> None:
    evs = [start(0), hb(60, True), hb(120, True), hb(180, True)]  # then silence (agent died)
    assert session_intervals(evs) == [(0, 180)]
    assert session_intervals(evs + [hb(240, False)]) == [(0, 180)]  # idle: not in use after 180
    assert session_intervals([start(0), hb(60, True), Ev(90, "power", {"state": "on"})]) == [(0, 60)]  # reboot
    assert session_intervals([start(0), Ev(90, "power", {"state": "off"})]) == [(0, 90)]
    assert session_intervals([start(0)]) == []  # nothing seen after the start: no time


def test_heartbeat_runs_and_union() -> None:
    beats = [hb(t, True) for t in (0, 60, 120, 300, 360)] + [hb(420, False), hb(480, True)]
    assert heartbeat_intervals(beats, 60) == [(0, 120), (300, 360)]  # gap of 180 s > 2 x 60 breaks the run
    evs = [start(0), end(0, 100)] + [hb(50, True), hb(110, True), hb(170, True)]
    assert in_use_intervals(evs, 60) == [(0, 170)]  # merged, nothing counted twice
    assert merge([(5, 10), (0, 3), (2, 6)]) == [(0, 10)]


def test_lesson_statuses() -> None:
    ls = lesson(1000 * M, 1040 * M)
    ivs = [(990 * M, 1005 * M), (1030 * M, 1100 * M)]  # 5 + 10 minutes inside
    u = attribute(ls, "pc1", ivs, [1000 * M], [], 10)
    assert (u.status, u.in_use_minutes, u.used, u.counted) == ("used", 15.0, True, True)
    assert attribute(ls, "pc1", ivs, [], [], 16).status == "not_used"
    assert attribute(ls, "pc1", [], [], [], 10).status == "device_off"
    assert attribute(ls, "pc1", [], [1020 * M], [], 10).status == "not_used"
    assert attribute(ls, None, [], [], [], 10).status == "no_device"
    assert attribute(ls, "pc1", [], [], [], 10, now=1039 * M).status == "pending"
    broken = [Fault("display_missing", "critical", 900 * M, None, "confirmed"), Fault("disk", "info", 900 * M)]
    f = attribute(ls, "pc1", [], [], broken, 10)
    assert (f.status, f.counted, f.faults) == ("faulty", False, ["display_missing"])
    assert attribute(ls, "pc1", [], [], broken, 10, exclude_faulty=False).counted
    assert attribute(ls, "pc1", [], [], [Fault("x", "warning", 900 * M, 1000 * M, "confirmed")],
                     10).status == "device_off"
    assert attribute(ls, "pc1", ivs, [], broken, 10).status == "used"  # used anyway: it counts


def test_rates_leave_out_excluded_and_empty() -> None:
    a = attribute(lesson(0, 2400, "王"), "pc", [(0, 2400)], [], [], 10)
    b = attribute(lesson(0, 2400, "王"), "pc", [], [], [], 10)
    c = attribute(lesson(0, 2400, "李"), "pc", [], [], [Fault("f", "critical", 0, None, "confirmed")], 10)
    r = rates_of([a, b, c], "teacher", 0.6)
    assert [(x.key, x.scheduled, x.used, x.rate, x.below_threshold) for x in r] == [("王", 2, 1, 0.5, True)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 60)), max_size=8),
       st.lists(st.tuples(st.integers(0, 260), st.booleans()), max_size=30), st.integers(0, 200))
def test_in_use_never_exceeds_the_lesson_or_the_union(sessions, beats, lesson_start) -> None:  # type: ignore[no-untyped-def]
    evs: list[Ev] = []
    for i, (a, d) in enumerate(sessions):
        evs += [start(a * M, str(i)), end(a * M, (a + d) * M, str(i))]
    evs += [hb(t * M, u) for t, u in beats]
    ivs = in_use_intervals(evs, 60)
    assert all(a < b for a, b in ivs) and all(ivs[i][1] < ivs[i + 1][0] for i in range(len(ivs) - 1))
    a, b = lesson_start * M, (lesson_start + 40) * M
    inside = overlap_seconds(ivs, a, b)
    assert 0 <= inside <= 40 * M
    per_session = [overlap_seconds([(s * M, (s + d) * M)], a, b) for s, d in sessions]
    assert inside >= max(per_session or [0])  # every ended session counts in full
    if not beats:
        assert inside <= sum(per_session) + 1e-6  # the union never counts a minute twice


def test_calendar_rules() -> None:
    assert official(date(2026, 10, 1))[0] == "holiday" and official(date(2026, 10, 10)) == ("workday", 3, "")
    assert official(date(2026, 5, 9)) == ("workday", 2, "")  # Labour Day make-up follows Tuesday
    kind, _, note = official(date(2031, 3, 3))  # beyond the package's data: Monday to Friday, with a note
    assert kind == "normal" and "2031" in note
    assert plan_day(date(2031, 3, 3), {}, []).teaching and plan_day(date(2031, 3, 3), {}, []).note
    over = {date(2026, 10, 1): ("workday", 5), date(2026, 11, 23): ("exam", None),
            date(2026, 11, 24): ("holiday", None)}
    assert plan_day(date(2026, 10, 1), over, []).weekday == 5  # the school's file overrides the state calendar
    exam = plan_day(date(2026, 11, 23), over, [])
    assert exam.kind == "exam" and not exam.teaching
    assert not plan_day(date(2026, 11, 24), over, []).teaching
    terms = [Term("秋", date(2026, 9, 1), date(2027, 1, 20))]
    assert plan_day(date(2026, 8, 31), {}, terms).kind == "vacation"
    assert week_parity(date(2026, 9, 1), terms) == "odd" and week_parity(date(2026, 9, 7), terms) == "even"
    assert default_term(date(2026, 11, 23)).start == date(2026, 9, 1)
    assert week_days("2026-W48")[0] == date(2026, 11, 23)


def test_timetable_odd_even_and_substitutions() -> None:
    m = SchoolModel("s", TZ, bells=[BellSet(date(2000, 1, 1), "default", {1: (480, 520), 2: (530, 570)})],
                    slots=[Slot("一班", 1, 1, "odd", "王", "数学"), Slot("一班", 1, 1, "even", "李", "语文")],
                    terms=[Term("秋", date(2026, 9, 1), date(2027, 1, 20))])
    m.subs = {"2026-11-30": [("一班", 1, "-", None), ("一班", 2, "赵", "科学")]}
    m.index()
    _, odd = lessons_on(m, date(2026, 11, 23))  # week 13 of the term
    _, even = lessons_on(m, date(2026, 11, 30))
    assert [(x.teacher, x.start, x.end) for x in odd] == [("王", "08:00", "08:40")]
    assert [(x.period, x.teacher, x.subject, x.substitute) for x in even] == [(2, "赵", "科学", True)]


# -- fault review (protocol.md §3) ----------------------------------------------------------
DAY = [lesson(480 * M, 520 * M), lesson(530 * M, 570 * M), lesson(580 * M, 620 * M)]  # 08:00, 08:50, 09:40


def day_rate(faults: list[Fault], ivs: list[tuple[float, float]] | None = None) -> tuple[int, int, int, int]:
    us = [attribute(ls, "pc", ivs or [], [], faults, 10) for ls in DAY]
    [r] = rates_of(us, "teacher", 0.6)
    return r.scheduled, r.used, r.excluded, r.awaiting_review


def test_a_report_alone_changes_no_rate_but_shows_it_awaits_review() -> None:
    report = Fault("report_display_missing", "warning", 470 * M, None)  # a teacher's 报修, 待核实
    used = [(480 * M, 520 * M)]
    assert day_rate([], used) == (3, 1, 0, 0)
    assert day_rate([report], used) == (3, 1, 0, 2)  # same rate; the two unused lessons await review
    u = attribute(DAY[1], "pc", used, [], [report], 10)
    assert (u.status, u.counted, u.awaiting_review) == ("device_off", True, True)
    assert not attribute(DAY[0], "pc", used, [], [report], 10).awaiting_review  # used: nothing to review


def test_confirmation_excuses_its_interval_only_and_rejection_restores() -> None:
    opened = Fault("display_missing", "critical", 470 * M, None)
    assert day_rate([opened]) == (3, 0, 0, 3)  # unconfirmed display_missing excuses nothing
    confirmed = Fault("display_missing", "critical", 470 * M, None, "confirmed", 525 * M, 575 * M)
    assert day_rate([confirmed]) == (2, 0, 1, 0)
    assert [attribute(ls, "pc", [], [], [confirmed], 10).status for ls in DAY] == ["device_off", "faulty",
                                                                                    "device_off"]
    whole = Fault("display_missing", "critical", 470 * M, 600 * M, "confirmed")  # default: opening to clearing
    # every lesson excused: no lesson left in the denominator, so no rate row at all
    assert rates_of([attribute(ls, "pc", [], [], [whole], 10) for ls in DAY], "teacher", 0.6) == []
    rejected = Fault("display_missing", "critical", 470 * M, None, "rejected")
    assert day_rate([rejected]) == day_rate([]) == (3, 0, 0, 0)


def test_unclean_shutdown_after_a_mains_cut_leaves_morning_lessons_device_off() -> None:
    # yesterday the PC was in use until 17:00 and the mains were cut; it is switched on at 09:35
    evening = -7 * 3600.0
    evs = [Ev(evening - 600 + i * 60, "heartbeat", {"in_use": True}, i) for i in range(11)]
    evs += [Ev(575 * M, "power", {"state": "on", "clean": False}, 20)]
    evs += [Ev(575 * M + i * 60, "heartbeat", {"in_use": True}, 21 + i) for i in range(50)]
    ivs = in_use_intervals(evs)
    seen = sorted(e.t for e in evs)
    unclean = [Fault("unclean_shutdown", "warning", evening, None),
               Fault("unclean_shutdown", "warning", evening, None, "confirmed")]
    us = [attribute(ls, "pc", ivs, seen, unclean, 10) for ls in DAY]
    assert [u.status for u in us] == ["device_off", "device_off", "used"]
    assert [(u.counted, u.awaiting_review) for u in us] == [(True, False)] * 3


def test_the_threshold_is_the_schools() -> None:
    us = [attribute(ls, "pc", [(480 * M, 570 * M)], [], [], 10) for ls in DAY]  # 2 of 3 = 0.667
    assert not rates_of(us, "teacher", 0.6)[0].below_threshold
    assert rates_of(us, "teacher", 0.7)[0].below_threshold
