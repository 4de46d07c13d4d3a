"""The collector (server side): a foundation here (store, migrations, leases, codes, spreadsheets, the audit log)
and sub-packages, lowest first: devices, lessons, school, intake, rates, operations (docs/collector.md)."""
