"""District: per-collector ingest counters, so concurrent collectors do not queue on one row.

The ingest counters are ``counters`` (a single collector) plus the sum of ``counter_shards``
(one row per counter and collector on a shared subscription); registry.ingest_stats adds both.
"""

VERSION = 401
NAME = "counter_shards"
STATEMENTS = [
    """CREATE TABLE counter_shards (
        name TEXT NOT NULL, shard TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (name, shard))""",
]
