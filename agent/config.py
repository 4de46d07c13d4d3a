"""Agent configuration: one INI file in the OS's usual place, overridden by BBT_AGENT_* variables."""
from __future__ import annotations

import configparser
import os
import socket
import sys
from dataclasses import dataclass, fields
from typing import Any, Dict, Optional

import protocol
from common.errors import BbtError


class ConfigError(BbtError, ValueError):
    pass


def default_config_path() -> str:
    if sys.platform == "win32":
        return os.path.join(os.environ.get("PROGRAMDATA", r"C:\ProgramData"), "bbt", "agent.ini")
    return "/etc/bbt/agent.ini"


def default_data_dir() -> str:
    if sys.platform == "win32":
        return os.path.join(os.environ.get("PROGRAMDATA", r"C:\ProgramData"), "bbt", "agent")
    if os.geteuid() == 0:
        return "/var/lib/bbt-agent"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "bbt-agent")


def default_device_id() -> str:
    name = socket.gethostname().split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:64]
    return cleaned or "pc"


@dataclass
class AgentConfig:
    broker: str = "mqtt://127.0.0.1:1883"
    school: str = ""
    device: str = ""
    username: Optional[str] = None
    password: Optional[str] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    command_key: Optional[str] = None  # base64 Ed25519 public key: commands/policy must be signed by it
    enrol_secret: Optional[str] = None  # the school's enrolment secret (bbt enrol-token): enrol on first start
    enrol_url: str = ""  # the server's dashboard address (default http://BROKER-HOST:8080)
    data_dir: str = ""
    heartbeat_s: float = 60.0
    keepalive_s: int = 120  # MQTT keepalive; the Last Will follows 1.5 x this after a power cut
    idle_minutes: float = 5.0
    replay_rate: float = 20.0  # messages per second while draining the outbox
    outbox_max_events: int = 100000
    outbox_max_mb: float = 50.0
    # probe periods (seconds) and thresholds; the school's policy may override idle_minutes/heartbeat_s.
    # A probe may run up to a quarter of its period early to share a wake-up (agent/ticker.py): two
    # wake-ups a minute on a quiet PC, five while the program scan polls
    usage_s: float = 30.0  # in-use decision (idle time, foreground teaching program)
    scan_s: float = 12.0  # running-program scan when it polls (report within 15 s); with the kernel's
    # process events (Linux, root) a new program is looked at when it starts
    power_s: float = 30.0  # sleep/wake detection
    fault_s: float = 60.0
    usb_s: float = 30.0
    drift_s: float = 3600.0
    inventory_h: float = 24.0
    protection_h: float = 6.0  # antivirus/patch state (PowerShell, apt: costly); a change is sent, else daily
    fault_hold_s: float = 300.0  # a fault must stay recovered this long before it clears
    disk_full_pct: float = 90.0
    mem_full_pct: float = 95.0
    temp_limit_c: float = 90.0
    clock_tolerance_s: float = 120.0
    time_server: str = ""  # optional SNTP server (host[:port]) for the clock check, e.g. the collector
    crash_starts: int = 3  # this many unclean starts ...
    crash_window_s: float = 900.0  # ... within this window raise agent_crash
    shutdown_warn_s: float = 300.0  # end-of-day shutdown: warning this long before
    projector: str = ""  # this classroom's projector/panel (PJLink, host[:port]); else the policy's `projectors`
    projector_password: str = ""  # its PJLink password (empty: the projector asks for none)
    projector_s: float = 300.0  # PJLink poll period
    projector_report_s: float = 3600.0  # a projector event at least this often even when nothing changed
    projector_timeout_s: float = 3.0
    update_health_s: float = 120.0  # self-update: a new version must connect within this, else it is rolled back
    desktop: str = "auto"  # how messages/shutdown reach the OS: auto | none (log only)
    log_file: str = ""

    def check(self) -> "AgentConfig":
        if not self.device:
            self.device = default_device_id()
        if not self.data_dir:
            self.data_dir = default_data_dir()
        if not protocol.valid_id(self.school):
            raise ConfigError("school %r must match %s (set school= in the config or --school)"
                              % (self.school, protocol.ID_PATTERN))
        if not protocol.valid_id(self.device):
            raise ConfigError("device %r must match %s" % (self.device, protocol.ID_PATTERN))
        for name in ("heartbeat_s", "usage_s", "scan_s", "power_s", "fault_s", "usb_s", "drift_s"):
            if getattr(self, name) < 0.2:
                raise ConfigError("%s must be at least 0.2 seconds" % name)
        if self.command_key:
            from common.signing import SignatureError, check_public_key

            try:
                check_public_key(self.command_key)
            except SignatureError as e:
                raise ConfigError("command_key: %s" % e) from None
        if not 10 <= self.keepalive_s <= 65535:
            raise ConfigError("keepalive_s must be between 10 and 65535 seconds")
        if self.outbox_max_events < 10 or self.outbox_max_mb <= 0:
            raise ConfigError("outbox_max_events must be >= 10 and outbox_max_mb > 0")
        return self


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
                environ: Optional[Dict[str, str]] = None) -> AgentConfig:
    """File (section [agent]) < environment BBT_AGENT_<KEY> < explicit overrides (command line)."""
    env = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    path = path or env.get("BBT_AGENT_CONFIG")
    if path or os.path.exists(default_config_path()):
        p = path or default_config_path()
        parser = configparser.ConfigParser()
        try:
            with open(p, encoding="utf-8") as f:
                parser.read_file(f)
        except OSError as e:
            raise ConfigError("cannot read agent config %s: %s" % (p, e.strerror)) from None
        except configparser.Error as e:
            raise ConfigError("agent config %s is not valid INI: %s" % (p, e)) from None
        if parser.has_section("agent"):
            values.update(parser.items("agent"))
            for k in ("ca_file", "cert_file", "key_file"):  # relative to the config file's folder
                if values.get(k) and not os.path.isabs(values[k]):
                    values[k] = os.path.join(os.path.dirname(os.path.abspath(p)), values[k])
    known = {f.name: f for f in fields(AgentConfig)}
    for name in known:
        key = "BBT_AGENT_" + name.upper()
        if key in env:
            values[name] = env[key]
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    cfg = AgentConfig()
    for k, v in values.items():
        if k not in known:
            raise ConfigError("unknown agent setting %r" % k)
        default = getattr(AgentConfig, k, None)
        try:
            if isinstance(default, float):
                v = float(v)
            elif isinstance(default, int) and not isinstance(default, bool):
                v = int(v)
        except (TypeError, ValueError):
            raise ConfigError("agent setting %s=%r is not a number" % (k, v)) from None
        setattr(cfg, k, v)
    return cfg.check()
