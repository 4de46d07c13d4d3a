"""A teacher's 教研组 (issue 20): the timetable's optional ``group`` column, kept on each row of the
teacher's lessons (like ``room``); collector.lessons.teacher_groups reads it per teacher."""

VERSION = 320
NAME = "teacher_group"
STATEMENTS = [
    "ALTER TABLE timetable ADD COLUMN teacher_group TEXT",
]
