"""Teaching time: the timetable and school calendar in memory and the lessons they schedule, where a lesson
is taught and people's marks on it (外出上课, 调课), how a lesson's use is attributed from a PC's events
(pure), the teacher and class groups, the school's usage settings and the days marked for recomputing.

Imports the collector's foundation and collector.devices, nothing above (docs/collector.md)."""
