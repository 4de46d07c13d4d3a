"""The collector: ingest, storage, school data, usage and alerts (server side)."""
