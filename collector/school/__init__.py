"""What a school hands in as files and keeps as its ledger: imports of every kind (read, validate, plan,
apply, report, templates), timetable grids, the asset ledger (设备清单) and semester stocktakes.

Imports the collector's foundation and collector.devices, collector.lessons, nothing above (docs/collector.md)."""
