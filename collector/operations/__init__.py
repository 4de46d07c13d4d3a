"""Running the schools: group power actions and wake-on-LAN, the collector's housekeeping thread,
retention and personal-data purges, backups and the trust jobs, `bbt deploy mosquitto`.

Imports the collector's foundation and collector.devices, collector.lessons, collector.school, collector.intake,
collector.rates, nothing above (docs/collector.md)."""
