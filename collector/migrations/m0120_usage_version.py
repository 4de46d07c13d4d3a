"""The version of a school's usage model (timetable, bells, calendar, devices, settings): changed by
every import and settings change (collector.lessons.usage_marks.invalidate_school), it keys the days
computed in memory by reads (collector.rates.usage_rollup.live_day) with the days' own versions."""

VERSION = 120
NAME = "usage_version"
STATEMENTS = [
    "ALTER TABLE schools ADD COLUMN usage_version TEXT",
]
