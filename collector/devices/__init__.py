"""The classroom PCs as the collector knows them and talks to them: the records their messages become
(ingest), the device registry, what each PC is told (policy, commands, agent updates, its projector's
address), the school's command-signing key, and publishing to them (mqttout).

Imports the collector's foundation, nothing above (docs/collector.md)."""
