"""Where a lesson is taught (issue 16): the timetable's optional room, people's 外出上课/调课 marks,
the note on an away lesson, and use of the classroom PCs outside lessons (课外使用).

``lesson_marks`` keeps every mark, also reversed ones (reversed_t set): the active mark of a lesson
is the one not reversed. ``outside_use`` holds, per device and school day, the in-use seconds
outside the class's lessons, recomputed with the day's rollup (collector.rates.usage.refresh_day).
"""

VERSION = 110
NAME = "lesson_place"
STATEMENTS = [
    "ALTER TABLE timetable ADD COLUMN room TEXT",
    "ALTER TABLE lesson_usage ADD COLUMN note TEXT",
    """CREATE TABLE lesson_marks (
        id {id}, school TEXT NOT NULL, date TEXT NOT NULL, class TEXT NOT NULL, period BIGINT NOT NULL,
        teacher TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL, marked_by TEXT NOT NULL,
        marked_t DOUBLE PRECISION NOT NULL,
        reversed_by TEXT, reversed_t DOUBLE PRECISION, reverse_reason TEXT)""",
    "CREATE INDEX lesson_marks_day ON lesson_marks (school, date)",
    """CREATE TABLE outside_use (
        school TEXT NOT NULL, date TEXT NOT NULL, device TEXT NOT NULL, class TEXT,
        seconds DOUBLE PRECISION NOT NULL, spans TEXT NOT NULL,
        PRIMARY KEY (school, date, device))""",
]
