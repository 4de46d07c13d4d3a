"""Agent self-update: a signed offer in the school's policy, a wheel installed next to the others,
a trial start watched by a small supervisor, and a rollback when the new version does not come up.

The offer (policy key ``agent_update``, docs/agent.md "Self-update") is signed on its own with the
school's Ed25519 key, the key that signs commands and policies (common.signing):
``{"version", "sha256", "url", "percent", "issued", "sig"}``. A device takes part when
``in_rollout(device, percent)`` (a hash of the device id: the same devices, whatever the order).

Layout under ``<data_dir>/versions``: ``<version>/`` (the wheel's files), ``state.json``
(``current``: the last version that came up healthy, None = the installed package; ``trial``: the
version being tried; ``failed``: versions that did not come up, never tried again) and, written by a
version once it connected to the broker, ``<version>/.healthy``.

The supervisor (:func:`supervise`, stdlib only) runs the chosen version as a child process with that
version's folder first on the Python path. A trial that has not written its marker within
``update_health_s`` (or that exits) is stopped and rolled back. Linux: the supervisor is the agent's
own process (systemd runs it); Windows: the service host runs the same loop with the service's stop
event; both start children through a :class:`Runner`, which the tests replace.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from functools import partial
from typing import Any, Callable, Dict, List, Optional

log = logging.getLogger(__name__)

RESTART_CODE = 75  # a child that installed an update exits with this: start the new version
CHILD_ENV = "BBT_AGENT_CHILD"  # set in a child the supervisor started
VERSION_ENV = "BBT_AGENT_VERSION_DIR"  # the version folder whose modules the child imports first
MARKER = ".healthy"
MAX_WHEEL = 64 * 1024 * 1024
_VERSION_RE = re.compile(r"\A[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}\Z")
_SHA_RE = re.compile(r"\A[0-9a-f]{64}\Z")


class UpdateError(ValueError):
    pass


# -- the offer -----------------------------------------------------------------------

def in_rollout(device: str, percent: float) -> bool:
    """Deterministic per device: the first 32 bits of SHA-256(device) mod 100 below ``percent``."""
    return int(hashlib.sha256(device.encode("utf-8")).hexdigest()[:8], 16) % 100 < percent


def check_offer(offer: Any, public_key: Optional[str], school: Optional[str] = None) -> Dict[str, Any]:
    """The offer when its signature verifies with the pinned key and its fields are sound; else UpdateError."""
    from common.signing import SignatureError, verify

    if not public_key:
        raise UpdateError("no pinned command key: an agent that only reports installs no update")
    if not isinstance(offer, dict):
        raise UpdateError("agent_update must be an object")
    try:
        verify(offer, public_key)
    except SignatureError as e:
        raise UpdateError("agent_update signature: %s" % e) from None
    if school is not None and offer.get("school") != school:
        raise UpdateError("agent_update is for school %r, not %r" % (offer.get("school"), school))
    version, sha, url, pct = offer.get("version"), offer.get("sha256"), offer.get("url"), offer.get("percent")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise UpdateError("agent_update.version %r is not a version" % (version,))
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise UpdateError("agent_update.sha256 must be 64 lower-case hex digits")
    if not isinstance(url, str) or not url:
        raise UpdateError("agent_update.url must be a non-empty string")
    if not isinstance(pct, (int, float)) or isinstance(pct, bool) or not 0 <= pct <= 100:
        raise UpdateError("agent_update.percent must be a number from 0 to 100")
    return offer


def wanted(offer: Dict[str, Any], device: str, running: str, state: Dict[str, Any]) -> Optional[str]:
    """Why this device skips a (verified) offer, or None when it should install it."""
    v = offer["version"]
    if v == running:
        return "already running %s" % v
    if v in state.get("failed", []):
        return "%s failed to start before: not tried again" % v
    if not in_rollout(device, float(offer["percent"])):
        return "not in the first %s%% of the rollout" % offer["percent"]
    return None


# -- the versions folder ---------------------------------------------------------------

class Versions:
    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, version: str) -> str:
        if not _VERSION_RE.match(version):
            raise UpdateError("bad version %r" % version)
        return os.path.join(self.root, version)

    def state(self) -> Dict[str, Any]:
        try:
            with open(os.path.join(self.root, "state.json"), encoding="utf-8") as f:
                st = json.load(f)
        except (OSError, ValueError):
            st = {}
        return {"current": st.get("current"), "trial": st.get("trial"), "failed": list(st.get("failed") or [])}

    def _save(self, st: Dict[str, Any]) -> None:
        os.makedirs(self.root, exist_ok=True)
        tmp = os.path.join(self.root, "state.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(st, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.root, "state.json"))

    def active(self) -> bool:
        """Whether a version other than the installed package is in play (then the supervisor runs)."""
        st = self.state()
        return bool(st["current"] or st["trial"])

    def install(self, version: str, wheel: str) -> str:
        """Unpack a pure-Python wheel into ``<version>/`` (a fresh folder; an old copy is replaced)."""
        dest = self.path(version)
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with zipfile.ZipFile(wheel) as z:
                names = z.namelist()
                meta = [n for n in names if n.endswith(".dist-info/WHEEL")]
                if not meta or b"Root-Is-Purelib: true" not in z.read(meta[0]):
                    raise UpdateError("the package is not a pure-Python wheel")
                for n in names:
                    if n.startswith(("/", "\\")) or ".." in n.replace("\\", "/").split("/"):
                        raise UpdateError("the wheel holds an unsafe path %r" % n)
                z.extractall(tmp)
        except zipfile.BadZipFile:
            raise UpdateError("the package is not a wheel (zip)") from None
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        return dest

    def begin_trial(self, version: str) -> None:
        st = self.state()
        st["trial"] = version
        marker = os.path.join(self.path(version), MARKER)
        if os.path.exists(marker):
            os.remove(marker)
        self._save(st)

    def healthy(self, version: str) -> bool:
        return os.path.exists(os.path.join(self.path(version), MARKER))

    def confirm(self, version: str) -> None:
        st = self.state()
        st["current"], st["trial"] = version, None
        self._save(st)

    def rollback(self) -> Optional[str]:
        """The trial failed: back to ``current``; the trial version is never tried again. Returns it."""
        st = self.state()
        failed = st["trial"]
        if failed and failed not in st["failed"]:
            st["failed"].append(failed)
        st["trial"] = None
        self._save(st)
        return failed


def versions_of(data_dir: str) -> Versions:
    return Versions(os.path.join(data_dir, "versions"))


def mark_healthy(data_dir: str, version: str) -> None:
    """Called by a running version once it has connected: the supervisor's trial succeeded."""
    try:
        folder = versions_of(data_dir).path(version)
    except UpdateError:
        return
    if os.path.isdir(folder) and not os.path.exists(os.path.join(folder, MARKER)):
        with open(os.path.join(folder, MARKER), "w", encoding="ascii") as f:
            f.write("%d\n" % int(time.time()))


# -- download and install (in the agent, on an offer) -------------------------------------

def server_base(enrol_url: str, broker: str) -> str:
    from urllib.parse import urlsplit

    if enrol_url:
        parts = urlsplit(enrol_url if "://" in enrol_url else "http://" + enrol_url)
        return "%s://%s" % (parts.scheme, parts.netloc)
    return "http://%s:8080" % (urlsplit(broker).hostname or "127.0.0.1")


def download(url: str, sha256: str, dest: str, timeout: float = 60.0) -> None:
    """Fetch ``url`` to ``dest``; UpdateError when it fails or its SHA-256 differs from the offer's."""
    from urllib.request import urlopen

    digest = hashlib.sha256()
    size = 0
    try:
        with urlopen(url, timeout=timeout) as r, open(dest, "wb") as f:  # noqa: S310 - the URL is signed
            while True:
                chunk = r.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_WHEEL:
                    raise UpdateError("the package is larger than %d MB" % (MAX_WHEEL >> 20))
                digest.update(chunk)
                f.write(chunk)
    except OSError as e:
        raise UpdateError("download of %s failed: %s" % (url, e)) from None
    if digest.hexdigest() != sha256:
        os.remove(dest)
        raise UpdateError("the package's SHA-256 %s differs from the signed offer's %s" % (digest.hexdigest(), sha256))


def apply_offer(offer: Any, public_key: Optional[str], device: str, running: str, versions: Versions,
                base_url: str, school: Optional[str] = None) -> Optional[str]:
    """Verify, download, check, unpack and begin the trial of an offered version. Returns the version
    to restart into, or None (the reason is logged). UpdateError for a refused or broken offer."""
    ok = check_offer(offer, public_key, school)
    why = wanted(ok, device, running, versions.state())
    if why is not None:
        log.debug("agent update skipped: %s", why)
        return None
    version = ok["version"]
    url = ok["url"] if "://" in ok["url"] else base_url.rstrip("/") + "/" + ok["url"].lstrip("/")
    os.makedirs(versions.root, exist_ok=True)
    wheel = os.path.join(versions.root, "%s.whl" % version)
    download(url, ok["sha256"], wheel)
    try:
        versions.install(version, wheel)
    finally:
        os.remove(wheel)
    versions.begin_trial(version)
    log.info("agent update %s installed; restarting into it (trial)", version)
    return version


# -- the supervisor ----------------------------------------------------------------------

class Child:
    """What the supervisor needs of a running version (subprocess.Popen has it)."""

    def poll(self) -> Optional[int]:
        raise NotImplementedError

    def terminate(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: Optional[float] = None) -> int:
        raise NotImplementedError


class Runner:
    """Starts a version of the agent: ``folder`` first on its Python path (None: the installed package)."""

    def __init__(self, argv: List[str], cwd: str) -> None:
        self.argv, self.cwd = argv, cwd

    def command(self) -> List[str]:
        """The frozen bbt-agent.exe runs itself; a Python install runs ``python -m agent``."""
        if getattr(sys, "frozen", False):
            return [sys.executable] + self.argv
        return [sys.executable, "-m", "agent"] + self.argv

    def start(self, folder: Optional[str]) -> Any:
        env = dict(os.environ)
        env[CHILD_ENV] = "1"
        env.pop(VERSION_ENV, None)
        if folder:
            env[VERSION_ENV] = folder  # agent/__main__.py puts its modules first (also in a frozen exe)
            env["PYTHONPATH"] = folder + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else folder
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # the Windows service: no console
        return subprocess.Popen(self.command(), env=env, cwd=folder or self.cwd, creationflags=flags)


def _wait(child: Any, until: Callable[[], bool], stop: threading.Event, timeout: Optional[float],
          poll_s: float) -> str:
    """'ok' when ``until()``, 'exited', 'stop' or 'timeout'."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if until():
            return "ok"
        if child.poll() is not None:
            return "exited"
        if stop.is_set():
            return "stop"
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout"
        stop.wait(poll_s)


def _end(child: Any) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def supervise(versions: Versions, runner: Any, stop: threading.Event, health_s: float = 120.0,
              poll_s: float = 0.2) -> int:
    """Run the chosen version until ``stop`` or until it exits (not to restart); a trial that is not
    healthy within ``health_s`` is rolled back. Returns the exit code to end with."""
    while True:
        st = versions.state()
        version = st["trial"] or st["current"]
        child = runner.start(versions.path(version) if version else None)
        trial = st["trial"]
        if trial:
            how = _wait(child, partial(versions.healthy, trial), stop, health_s, poll_s)
            if how == "stop":
                _end(child)
                return 0
            if how != "ok":
                _end(child)
                log.error("agent %s did not come up healthy within %ss (%s): rolled back to %s", trial,
                          health_s, how, st["current"] or "the installed version")
                versions.rollback()
                continue
            versions.confirm(trial)
            log.info("agent %s is healthy: it is the current version now", trial)
        how = _wait(child, lambda: False, stop, None, poll_s)
        if how == "stop":
            _end(child)
            return 0
        code = child.wait()
        if code != RESTART_CODE:
            return code


def child_argv(config_path: Optional[str], overrides: Dict[str, Any], verbose: bool) -> List[str]:
    argv = ["--config", config_path] if config_path else []
    for key in ("broker", "school", "device", "enrol_secret", "enrol_url"):
        if overrides.get(key):
            argv += ["--" + key.replace("_", "-"), str(overrides[key])]
    return argv + (["-v"] if verbose else [])
