"""School model (bell schedules, timetable, substitutions, calendar, terms) and the usage rollup.

``lesson_usage`` holds one row per scheduled lesson (school, date, class, period), computed from
the events by collector.rates.usage and refreshed when a day is marked dirty in ``usage_days``.
``usage_published`` keeps each published week frozen as JSON.
"""

VERSION = 100
NAME = "school_model"
STATEMENTS = [
    """CREATE TABLE bell_periods (
        school TEXT NOT NULL, valid_from TEXT NOT NULL, schedule TEXT NOT NULL, period BIGINT NOT NULL,
        start_min BIGINT NOT NULL, end_min BIGINT NOT NULL,
        PRIMARY KEY (school, valid_from, period))""",
    """CREATE TABLE timetable (
        school TEXT NOT NULL, class TEXT NOT NULL, weekday BIGINT NOT NULL, period BIGINT NOT NULL,
        weeks TEXT NOT NULL, teacher TEXT NOT NULL, subject TEXT NOT NULL,
        PRIMARY KEY (school, class, weekday, period, weeks))""",
    """CREATE TABLE substitutions (
        school TEXT NOT NULL, date TEXT NOT NULL, class TEXT NOT NULL, period BIGINT NOT NULL,
        teacher TEXT NOT NULL, subject TEXT,
        PRIMARY KEY (school, date, class, period))""",
    """CREATE TABLE calendar_days (
        school TEXT NOT NULL, date TEXT NOT NULL, kind TEXT NOT NULL, follows_weekday BIGINT,
        PRIMARY KEY (school, date))""",
    """CREATE TABLE terms (
        school TEXT NOT NULL, name TEXT NOT NULL, start_date TEXT NOT NULL, end_date TEXT NOT NULL,
        PRIMARY KEY (school, start_date))""",
    """CREATE TABLE usage_days (
        school TEXT NOT NULL, date TEXT NOT NULL, dirty BIGINT NOT NULL DEFAULT 1,
        computed DOUBLE PRECISION, valid_until DOUBLE PRECISION, faults_seen BIGINT NOT NULL DEFAULT 0,
        lessons BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (school, date))""",
    """CREATE TABLE lesson_usage (
        school TEXT NOT NULL, date TEXT NOT NULL, class TEXT NOT NULL, period BIGINT NOT NULL,
        week TEXT NOT NULL, teacher TEXT NOT NULL, subject TEXT NOT NULL, is_substitute BIGINT NOT NULL DEFAULT 0,
        start_t DOUBLE PRECISION NOT NULL, end_t DOUBLE PRECISION NOT NULL, device TEXT,
        in_use_s DOUBLE PRECISION NOT NULL, used BIGINT NOT NULL, counted BIGINT NOT NULL,
        status TEXT NOT NULL, faults TEXT,
        PRIMARY KEY (school, date, class, period))""",
    "CREATE INDEX lesson_usage_week ON lesson_usage (week, school)",
    "CREATE INDEX lesson_usage_teacher ON lesson_usage (school, teacher, week)",
    """CREATE TABLE usage_published (
        school TEXT NOT NULL, week TEXT NOT NULL, published DOUBLE PRECISION NOT NULL,
        published_by TEXT, report TEXT NOT NULL,
        PRIMARY KEY (school, week))""",
    """CREATE TABLE usage_patrols (
        school TEXT NOT NULL, date TEXT NOT NULL, made DOUBLE PRECISION NOT NULL, record TEXT NOT NULL,
        PRIMARY KEY (school, date))""",
]
