"""Usage rates (使用率): the per-lesson rollup, rates and trends, how certain a figure is, use outside
lessons, fault reviews that excuse lessons, the patrol record and weekly reports, exports, the scheduled
usage jobs, the bureau's view, and the pages' reads of the collector's tables (queries).

Imports the collector's foundation and collector.devices, collector.lessons, collector.school, collector.intake, nothing
above (docs/collector.md)."""
