"""MQTT in: the embedded broker with its accounts and TLS, certificates, enrolment, the collector service
and its fast client, the store each batch is committed to (with inventory and protection state), and
the relay that tells another process what was stored.

Imports the collector's foundation and collector.devices, collector.lessons, collector.school, nothing above
(docs/collector.md)."""
