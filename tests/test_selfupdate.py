"""Agent self-update: an offer signed with another key is refused, a good package is installed and its
version reported, a broken one is rolled back. Linux end to end (real agent processes, the server's
HTTP and Mosquitto; the packages are wheels this test writes); the Windows service path through the
same supervisor with a fake runner."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

import protocol
from agent import selfupdate
from agent.selfupdate import UpdateError, Versions
from collector import migrations
from collector.db import connect
from collector.devices import school_keys
from common import signing
from tests.agent_helpers import start_agent, stop
from tests.brokers import Mosquitto, free_port
from tests.helpers import ROOT, bbt_cmd, publisher, run_bbt, wait_for

GOOD, BROKEN = "9.9.9", "9.9.10"


def write_wheel(path: Path, version: str, files: dict[str, str]) -> Path:
    """A pure-Python wheel written directly (PEP 427): the files plus a .dist-info."""
    wheel = path / f"bbt-{version}-py3-none-any.whl"
    info = f"bbt-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: bbt\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return wheel


def agent_wheel(path: Path, version: str) -> Path:
    """This repository's agent (agent/, protocol/, common/, bbt/) as version ``version``."""
    files = {}
    for pkg in ("agent", "protocol", "common", "bbt"):
        for f in sorted((Path(ROOT) / pkg).rglob("*.py")):
            files[f.relative_to(ROOT).as_posix()] = f.read_text(encoding="utf-8")
    files["common/__init__.py"] = f'"""bbt (test build)."""\n__version__ = "{version}"\n'
    return write_wheel(path, version, files)


def broken_wheel(path: Path, version: str) -> Path:
    return write_wheel(path, version, {"agent/__init__.py": "", "agent/__main__.py": "raise SystemExit('broken')\n"})


# -- the offer -----------------------------------------------------------------------

def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _offer(key: Any, **over: Any) -> dict[str, Any]:
    body = {"version": GOOD, "sha256": "a" * 64, "url": "/agent-updates/s1/x.whl", "percent": 100, "school": "s1"}
    body.update(over)
    return signing.sign(body, key)


def test_the_rollout_is_deterministic_per_device_and_follows_the_percentage() -> None:
    devices = [f"pc-{i}" for i in range(2000)]
    first = [d for d in devices if selfupdate.in_rollout(d, 30)]
    assert first == [d for d in devices if selfupdate.in_rollout(d, 30)]
    assert 500 <= len(first) <= 700
    assert set(first) <= {d for d in devices if selfupdate.in_rollout(d, 60)}  # widening keeps who had it
    assert not any(selfupdate.in_rollout(d, 0) for d in devices)
    assert all(selfupdate.in_rollout(d, 100) for d in devices)


def test_an_offer_signed_with_another_key_or_changed_is_refused() -> None:
    school, other = _key(), _key()
    pub = signing.public_b64(school)
    assert selfupdate.check_offer(_offer(school), pub)["version"] == GOOD
    with pytest.raises(UpdateError, match="signature"):
        selfupdate.check_offer(_offer(other), pub)
    tampered = dict(_offer(school), sha256="b" * 64)
    with pytest.raises(UpdateError, match="signature"):
        selfupdate.check_offer(tampered, pub)
    with pytest.raises(UpdateError, match="for school 's1', not 's2'"):
        selfupdate.check_offer(_offer(school), pub, "s2")
    with pytest.raises(UpdateError, match="no pinned command key"):
        selfupdate.check_offer(_offer(school), None)
    with pytest.raises(UpdateError, match="percent"):
        selfupdate.check_offer(_offer(school, percent=101), pub)


def test_a_package_that_does_not_match_the_signed_hash_is_not_installed(tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    wheel = agent_wheel(tmp_path, GOOD)

    def app(environ: Any, start: Any) -> list[bytes]:
        start("200 OK", [("Content-Type", "application/zip")])
        return [wheel.read_bytes()]
    srv = make_server("127.0.0.1", 0, app)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        key = _key()
        versions = Versions(str(tmp_path / "versions"))
        base = f"http://127.0.0.1:{srv.server_port}"
        with pytest.raises(UpdateError, match="SHA-256"):
            selfupdate.apply_offer(_offer(key), signing.public_b64(key), "pc-1", "0.1.0", versions, base)
        assert not (tmp_path / "versions" / GOOD).exists() and versions.state()["trial"] is None
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert selfupdate.apply_offer(_offer(key, sha256=sha), signing.public_b64(key), "pc-1", "0.1.0", versions,
                                      base) == GOOD
        assert (tmp_path / "versions" / GOOD / "agent" / "runner.py").is_file()
        assert versions.state()["trial"] == GOOD
    finally:
        srv.shutdown()


def test_unsafe_or_non_pure_wheels_are_refused(tmp_path: Path) -> None:
    versions = Versions(str(tmp_path / "v"))
    evil = write_wheel(tmp_path, "1.0", {"../evil.py": "x"})
    with pytest.raises(UpdateError, match="unsafe path"):
        versions.install("1.0", str(evil))
    native = tmp_path / "native.whl"
    with zipfile.ZipFile(native, "w") as z:
        z.writestr("x-1.dist-info/WHEEL", "Root-Is-Purelib: false\n")
    with pytest.raises(UpdateError, match="pure-Python"):
        versions.install("1.0", str(native))


# -- the Windows service path: the same supervisor, a fake runner -----------------------

class FakeChild:
    def __init__(self, on_start: Any) -> None:
        self.code: int | None = None
        on_start(self)

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        if self.code is None:
            self.code = 0

    def wait(self, timeout: float | None = None) -> int:
        while self.code is None:
            time.sleep(0.01)
        return self.code


class FakeService:
    """Stands in for the Windows service's child processes: each version behaves as the test says."""

    def __init__(self, versions: Versions, behaviour: dict[str | None, str]) -> None:
        self.versions, self.behaviour = versions, behaviour
        self.started: list[str | None] = []
        self.children: list[FakeChild] = []

    def start(self, folder: str | None) -> FakeChild:
        version = Path(folder).name if folder else None
        self.started.append(version)

        def on_start(child: FakeChild) -> None:
            how = self.behaviour.get(version, "healthy")
            if how == "healthy" and version:
                selfupdate.mark_healthy(str(Path(self.versions.root).parent), version)
            elif how == "crash":
                child.code = 1
        child = FakeChild(on_start)
        self.children.append(child)
        return child


def test_windows_service_path_confirms_a_healthy_trial_and_rolls_back_a_hanging_one(tmp_path: Path) -> None:
    versions = selfupdate.versions_of(str(tmp_path))
    for v in ("2.0", "3.0"):
        Path(versions.path(v)).mkdir(parents=True)
    versions.begin_trial("2.0")
    stop = threading.Event()
    svc = FakeService(versions, {"2.0": "healthy", "3.0": "hang"})
    t = threading.Thread(target=lambda: selfupdate.supervise(versions, svc, stop, health_s=0.5, poll_s=0.02))
    t.start()
    wait_for(lambda: versions.state()["current"] == "2.0", 5, what="2.0 confirmed")
    versions.begin_trial("3.0")  # what the running 2.0 does on a new offer, then it exits to restart
    svc.children[-1].code = selfupdate.RESTART_CODE
    wait_for(lambda: versions.state()["failed"] == ["3.0"], 5, what="3.0 rolled back")
    wait_for(lambda: svc.started[-1] == "2.0" and len(svc.started) == 3, 5, what="2.0 started again")
    stop.set()
    t.join(5)
    assert svc.started == ["2.0", "3.0", "2.0"] and versions.state() == {"current": "2.0", "trial": None,
                                                                         "failed": ["3.0"]}


def test_a_started_version_is_imported_from_its_folder_first_as_in_the_frozen_exe(tmp_path: Path) -> None:
    """The frozen exe ignores PYTHONPATH: agent/__main__.py run as a script (as the exe runs it) imports
    the agent from BBT_AGENT_VERSION_DIR, which the supervisor's Runner sets."""
    folder = tmp_path / "versions" / "7.0"
    (folder / "agent").mkdir(parents=True)
    (folder / "agent" / "__init__.py").write_text("")
    (folder / "agent" / "service.py").write_text(
        "import agent.config\n"
        "def run_foreground(config, overrides, verbose):\n"
        "    print('from', __file__, agent.config.__file__)\n"
        "    return 7\n")
    (folder / "agent" / "config.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["BBT_AGENT_VERSION_DIR"] = str(folder)
    r = subprocess.run([sys.executable, str(Path(ROOT) / "agent" / "__main__.py"), "--school", "s1"],
                       env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 7, r.stderr
    assert r.stdout.split() == ["from", str(folder / "agent" / "service.py"), str(folder / "agent" / "config.py")]
    runner = selfupdate.Runner(["--school", "s1"], str(tmp_path))
    assert runner.command()[1:3] == ["-m", "agent"]


# -- Linux, end to end ----------------------------------------------------------------------

def _agent_version(db_path: str) -> str | None:
    db = connect(db_path)
    try:
        rows = db.query("SELECT agent_version, online FROM devices WHERE device = 'pc-1'")
        return rows[0]["agent_version"] if rows and rows[0]["online"] else None
    finally:
        db.close()


def _server(db_path: str, mosquitto: Mosquitto, http_port: int, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(bbt_cmd("server", "--db", db_path, "--broker", mosquitto.url, "--http",
                                    f"127.0.0.1:{http_port}"), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_linux_refuses_another_key_installs_a_good_update_and_rolls_back_a_broken_one(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    db_path = str(tmp_path / "bbt.db")
    db = connect(db_path)
    migrations.migrate(db)
    pub = school_keys.public_key(db, "s1")
    school_key = school_keys.private_key(db, "s1")
    db.close()
    http_port = free_port()
    log_path = tmp_path / "agent-pc-1.log"
    agent = start_agent(tmp_path, mosquitto.url, device="pc-1", BBT_AGENT_COMMAND_KEY=pub,
                        BBT_AGENT_ENROL_URL=f"http://127.0.0.1:{http_port}", BBT_AGENT_UPDATE_HEALTH_S="30")
    server = None
    with (tmp_path / "server.log").open("wb") as server_log:
        try:
            # 1. a policy the school's key signed, carrying an offer another key signed: refused
            bad = signing.sign_policy(dict(protocol.DEFAULT_POLICY, agent_update=_offer(_key())), key=school_key)
            pubr = publisher(mosquitto.port, "test-policy")
            pubr.publish(protocol.policy_topic("s1"), json.dumps(bad), qos=1, retain=True).wait_for_publish(5)
            pubr.disconnect()
            wait_for(lambda: "agent update refused: agent_update signature" in log_path.read_text(), 20,
                     what="the refusal in the agent's log")
            versions = tmp_path / "agent-pc-1" / "versions"
            assert not (versions / GOOD).exists()

            # 2. a good package, offered with the CLI and served by the server: installed, reported
            r = run_bbt("agent-update", "offer", str(agent_wheel(tmp_path, GOOD)), "--school", "s1", "--percent",
                        "100", "--db", db_path)
            assert r.returncode == 0, r.stderr
            server = _server(db_path, mosquitto, http_port, server_log)
            wait_for(lambda: _agent_version(db_path) == GOOD, 60, what="the new version's status")
            wait_for(lambda: json.loads((versions / "state.json").read_text()) == {
                "current": GOOD, "trial": None, "failed": []}, 10, what="the trial confirmed")
            assert (versions / GOOD / ".healthy").exists()

            # 3. a broken one: started, not healthy, rolled back to the good one, not tried again
            _end(server)
            r = run_bbt("agent-update", "offer", str(broken_wheel(tmp_path, BROKEN)), "--school", "s1", "--db",
                        db_path)
            assert r.returncode == 0, r.stderr
            server = _server(db_path, mosquitto, http_port, server_log)
            wait_for(lambda: json.loads((versions / "state.json").read_text())["failed"] == [BROKEN], 60,
                     what="the broken version rolled back")
            assert json.loads((versions / "state.json").read_text())["current"] == GOOD
            wait_for(lambda: _agent_version(db_path) == GOOD, 30, what="the good version back online")
            assert "did not come up healthy" in log_path.read_text()
            time.sleep(1)
            assert agent.poll() is None  # the supervisor is still there
        finally:
            stop(agent)
            if server is not None:
                _end(server)
    assert agent.returncode == 0, log_path.read_text()[-3000:]
