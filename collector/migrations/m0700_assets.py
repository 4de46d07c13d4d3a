"""Asset ledger (设备清单) and semester stocktakes (学期清查盘点), issue 18.

``assets``: every item of a school's classrooms (the PC, projector or interactive panel, whiteboard,
speakers, 中控), keyed by the school's asset code (资产编号). A PC's row carries the agent's device id
and is filled from its inventory (collector.school.assets). ``stocktakes`` holds one row per stocktake;
``stocktake_items`` copies the ledger when it starts and records each confirmation; a finished
stocktake is frozen (its rows never change again)."""

VERSION = 700
NAME = "assets"
STATEMENTS = [
    """CREATE TABLE assets (
        id {id}, school TEXT NOT NULL, code TEXT NOT NULL, item TEXT NOT NULL, room TEXT, building TEXT,
        model TEXT, serial TEXT, maker TEXT, board_serial TEXT, purchase_date TEXT, warranty_end TEXT,
        supplier TEXT, state TEXT NOT NULL DEFAULT 'in_use', device TEXT, note TEXT,
        updated DOUBLE PRECISION NOT NULL, updated_by TEXT)""",
    "CREATE UNIQUE INDEX assets_code ON assets (school, code)",
    "CREATE INDEX assets_device ON assets (school, device)",
    """CREATE TABLE stocktakes (
        id {id}, school TEXT NOT NULL, name TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
        started_by TEXT NOT NULL, finished DOUBLE PRECISION, finished_by TEXT)""",
    "CREATE INDEX stocktakes_school ON stocktakes (school, started)",
    """CREATE TABLE stocktake_items (
        id {id}, stocktake_id BIGINT NOT NULL, asset_id BIGINT NOT NULL, code TEXT NOT NULL, item TEXT NOT NULL,
        room TEXT, building TEXT, model TEXT, serial TEXT, state TEXT NOT NULL,
        confirmed DOUBLE PRECISION, confirmed_by TEXT, found_room TEXT, via TEXT)""",
    "CREATE UNIQUE INDEX stocktake_items_asset ON stocktake_items (stocktake_id, asset_id)",
]
