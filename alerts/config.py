"""Per-school alert configuration: rules, channels, routes, quiet hours (a JSON document).

Channel URLs hold secrets (bot keys, DingTalk signing secrets, SMTP passwords): they are stored
but never logged or printed; ``redacted`` shows a config with them masked.
"""
from __future__ import annotations

import copy
import json
import re
import time
import warnings
from typing import Any

from collector.db import Database
from common.errors import BbtError

SEVERITIES = ("info", "warning", "critical")
RATE_LIMITED = ("wecombot", "wxwork", "wecom", "dingtalk")  # the bots accept 20 messages a minute

DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "fault": {"enabled": True},
    "offline_in_lesson": {"enabled": True, "severity": "warning"},
    "floor_offline": {"enabled": True, "severity": "critical", "min_devices": 3, "ratio": 0.8},
    "building_offline": {"enabled": True, "severity": "critical", "min_devices": 6, "ratio": 0.8},
    "left_on": {"enabled": True, "severity": "info", "after_min": 30, "night": "22:00", "morning": "06:00"},
    "unclean_shutdowns": {"enabled": True, "severity": "warning", "count": 3, "days": 7},
    "software": {"enabled": True, "severity": "info", "severity_in_lesson": "warning"},
    "drift": {"enabled": True, "severity": "warning"},
    "new_software": {"enabled": True, "severity": "info"},
    "usage_below": {"enabled": True, "severity": "info"},  # the threshold: the school's usage setting
    "agent_silent": {"enabled": True, "severity": "warning", "after_h": 24},
    # projectors (PJLink, reported by the classroom's agent): left on after school / at night, lamp hours
    "projector_left_on": {"enabled": True, "severity": "warning", "after_min": 30, "night": "22:00",
                          "morning": "06:00", "fresh_min": 90},
    "projector_lamp": {"enabled": True, "severity": "info", "hours": 3000},
    # 课外使用 (不得允许学生单独使用): a PC in use for ``minutes`` outside lessons on a school day
    "outside_use": {"enabled": False, "severity": "info", "minutes": 20, "check_every_min": 10},
    # 病毒防护 / 安全补丁 (protocol 1.2 protection events -> faults in the register, collector.intake.protection)
    "protection": {"enabled": True, "severity": "warning", "severity_threat": "critical", "signature_days": 7,
                   "patch_days": 14, "update_days": 60},
    # 严禁无关U盘: a USB volume not on the school policy's usb allow-list, in lessons and outside them
    "usb": {"enabled": True, "in_lessons": True, "off_hours": True, "severity": "info",
            "severity_in_lesson": "warning"},
}

DEFAULT_CONFIG: dict[str, Any] = {
    "rules": DEFAULT_RULES,
    "event_ttl_h": 24,            # an event alert (drift, software ...) resolves by itself after this
    "channels": {},               # name -> {"url": apprise URL, "person": str, "rate_per_min": int, "endpoint"}
    "routes": [],                 # [{"match": {...}, "channels": [...], "escalate": [...], ...}]
    "group_by": ["building", "floor", "kind"],
    "group_wait_s": 30,
    "repeat_interval_min": 240,
    "quiet_hours": {"start": "22:00", "end": "07:00"},
    "inhibit": [{"source_kind": "building_offline", "equal": ["building"]},
                {"source_kind": "floor_offline", "equal": ["building", "floor"]}],
    "send_resolved": True,
    "base_url": None,             # the dashboard's address for acknowledgement links
}

_HHMM = re.compile(r"\A([01]\d|2[0-3]):[0-5]\d\Z")
MATCH_KEYS = ("kind", "code", "severity", "min_severity", "building", "floor", "class", "device")


class ConfigError(BbtError, ValueError):
    """A bad config value. ``field`` says where ("channels.NAME.url", "routes[0].channels",
    "quiet_hours"), ``code`` what is wrong (for a form to say it in the user's language)."""

    def __init__(self, message: str, field: str | None = None, code: str | None = None, **params: Any) -> None:
        super().__init__(message)
        self.field, self.code, self.params = field, code, params


def merged(custom: dict[str, Any] | None) -> dict[str, Any]:
    """The defaults overlaid with a school's settings (rules merge per rule)."""
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in (custom or {}).items():
        if key == "rules" and isinstance(value, dict):
            for name, opts in value.items():
                cfg["rules"].setdefault(name, {}).update(opts or {})
        else:
            cfg[key] = copy.deepcopy(value)
    return cfg


def validate(custom: Any) -> dict[str, Any]:
    """Check a school's config document; raise ConfigError naming the first problem."""
    if not isinstance(custom, dict):
        raise ConfigError("the alert config must be a JSON object")
    unknown = set(custom) - set(DEFAULT_CONFIG)
    if unknown:
        raise ConfigError(f"unknown alert config keys: {', '.join(sorted(unknown))}")
    cfg = merged(custom)
    for name, opts in cfg["rules"].items():
        if name not in DEFAULT_RULES:
            raise ConfigError(f"rules.{name}: no such rule (one of {', '.join(DEFAULT_RULES)})")
        if name == "usage_below" and "threshold" in opts:
            raise ConfigError("rules.usage_below.threshold: the threshold is the school's usage setting "
                              "(bbt usage settings --school S threshold=0.7), not an alert setting")
        for k, v in opts.items():
            if k.startswith("severity") and v not in SEVERITIES:
                raise ConfigError(f"rules.{name}.{k}: {v!r} is not one of {', '.join(SEVERITIES)}")
            if k.endswith("_days") and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
                raise ConfigError(f"rules.{name}.{k}: {v!r} must be a number of days > 0")
    if not isinstance(cfg["channels"], dict):
        raise ConfigError("channels must be an object of name -> {url, ...}", "channels", "type")
    for name, ch in cfg["channels"].items():
        if not isinstance(ch, dict) or not isinstance(ch.get("url"), str):
            raise ConfigError(f"channels.{name}: needs a 'url' (an apprise URL such as wecombot://KEY)",
                              f"channels.{name}.url", "url_missing")
        if not _url_ok(ch["url"]):
            raise ConfigError(f"channels.{name}: the url is not a valid apprise URL (the value is not shown)",
                              f"channels.{name}.url", "url_invalid")
        rate = ch.get("rate_per_min")
        if rate is not None and (not isinstance(rate, int) or rate < 1):
            raise ConfigError(f"channels.{name}.rate_per_min must be a positive integer",
                              f"channels.{name}.rate_per_min", "positive_integer")
    if not isinstance(cfg["routes"], list):
        raise ConfigError("routes must be a list", "routes", "type")
    for i, r in enumerate(cfg["routes"]):
        _check_route(cfg, i, r)
    q = cfg["quiet_hours"]
    if q is not None and not (isinstance(q, dict) and _HHMM.match(str(q.get("start")))
                              and _HHMM.match(str(q.get("end")))):
        raise ConfigError("quiet_hours must be null or {\"start\": \"HH:MM\", \"end\": \"HH:MM\"}",
                          "quiet_hours", "hhmm")
    for key in ("group_wait_s", "repeat_interval_min", "event_ttl_h"):
        if not isinstance(cfg[key], (int, float)) or cfg[key] < 0:
            raise ConfigError(f"{key} must be a number >= 0", key, "non_negative")
    return custom


def _check_route(cfg: dict[str, Any], i: int, r: Any) -> None:
    where = f"routes[{i}]"
    if not isinstance(r, dict):
        raise ConfigError(f"{where} must be an object", where, "type")
    bad = set(r.get("match", {})) - set(MATCH_KEYS)
    if bad:
        raise ConfigError(f"{where}.match: unknown keys {', '.join(sorted(bad))} (one of {', '.join(MATCH_KEYS)})",
                          f"{where}.match", "match_keys", keys=", ".join(sorted(bad)))
    for key in ("severity", "min_severity"):
        if key in r.get("match", {}) and r["match"][key] not in SEVERITIES:
            raise ConfigError(f"{where}.match.{key}: {r['match'][key]!r} is not one of {', '.join(SEVERITIES)}",
                              f"{where}.match.{key}", "severity")
    if not r.get("channels") and not r.get("escalate"):
        raise ConfigError(f"{where}: names no channel", f"{where}.channels", "no_channel")
    names = list(r.get("channels", []))
    for step in r.get("escalate", []):
        if not isinstance(step, dict) or not isinstance(step.get("after_min"), (int, float)):
            raise ConfigError(f"{where}.escalate: each step needs after_min and channels", f"{where}.escalate",
                              "escalate")
        names += step.get("channels", [])
    for n in names:
        if n not in cfg["channels"]:
            raise ConfigError(f"{where}: channel {n!r} is not defined in channels", f"{where}.channels",
                              "unknown_channel", name=n)


def load_apprise() -> Any:
    """apprise, imported without its DeprecationWarning (it still imports imghdr on Python 3.11)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        apprise.Apprise.instantiate("json://localhost")  # loads every plugin module now
    return apprise


def _url_ok(url: str) -> bool:
    return load_apprise().Apprise.instantiate(url) is not None


def channel_kind(url: str) -> str:
    return url.split("://", 1)[0].lower()


def rate_per_min(channel: dict[str, Any]) -> int | None:
    if channel.get("rate_per_min"):
        return int(channel["rate_per_min"])
    return 20 if channel_kind(channel["url"]) in RATE_LIMITED else None


def redacted(custom: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(custom)
    for ch in out.get("channels", {}).values():
        if isinstance(ch, dict) and "url" in ch:
            ch["url"] = channel_kind(ch["url"]) + "://***"
    return out


def load(db: Database, school: str) -> dict[str, Any]:
    rows = db.query("SELECT config FROM alert_config WHERE school = ?", (school,))
    return merged(json.loads(rows[0]["config"]) if rows else None)


def load_raw(db: Database, school: str) -> dict[str, Any]:
    rows = db.query("SELECT config FROM alert_config WHERE school = ?", (school,))
    return json.loads(rows[0]["config"]) if rows else {}


def save(db: Database, school: str, custom: dict[str, Any]) -> None:
    validate(custom)
    db.execute("INSERT INTO alert_config (school, config, updated) VALUES (?, ?, ?) ON CONFLICT (school) "
               "DO UPDATE SET config = excluded.config, updated = excluded.updated",
               (school, json.dumps(custom, ensure_ascii=False), time.time()))


def schools(db: Database) -> list[str]:
    rows = db.query("SELECT school FROM alert_config UNION SELECT DISTINCT school FROM devices")
    return sorted(r["school"] for r in rows)
