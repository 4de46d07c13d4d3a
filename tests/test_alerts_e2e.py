"""End to end with real processes: a real agent killed and restarted (an unclean shutdown) -> Mosquitto ->
`bbt server` (its alert engine under the alerts lease) -> a local WeCom endpoint: fired, then resolved."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from alerts import config
from collector import migrations
from collector.db import connect
from tests.agent_helpers import start_agent, stop
from tests.alert_rig import school_config
from tests.brokers import Mosquitto, free_port
from tests.helpers import ROOT, bbt_cmd, wait_for
from tests.webhook import WebhookReceiver


def test_a_real_agents_fault_reaches_the_bot_and_its_clearing_resolves_it(mosquitto: Mosquitto,
                                                                         tmp_path: Path) -> None:
    db_path = str(tmp_path / "bbt.db")
    with WebhookReceiver() as receiver:
        db = connect(db_path)
        migrations.migrate(db)
        config.save(db, "s1", school_config(receiver, group_wait_s=0))
        db.close()
        log = (tmp_path / "server.log").open("wb")
        server = subprocess.Popen(bbt_cmd("server", "--db", db_path, "--broker", mosquitto.url, "--http",
                                          f"127.0.0.1:{free_port()}"), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        agent = start_agent(tmp_path, mosquitto.url, device="pc-7", BBT_AGENT_FAULT_HOLD_S="2")
        try:
            wait_for(lambda: (tmp_path / "agent-pc-7" / "outbox.db").exists(), 20, what="the agent's outbox")
            time.sleep(1.5)
            agent.send_signal(signal.SIGKILL)  # as a power cut would
            agent.wait(10)
            agent = start_agent(tmp_path, mosquitto.url, device="pc-7", BBT_AGENT_FAULT_HOLD_S="2")
            fired = wait_for(lambda: [m for m in receiver.of("wecom") if "unclean_shutdown" in m.text], 30,
                             what="the unclean_shutdown alert")[0]
            assert fired.text.startswith("pc-7 非正常关机 (unclean_shutdown)"), fired.text
            assert "收到请点：http://bbt.school.test/alerts/ack?ids=" in fired.text
            done = wait_for(lambda: [m for m in receiver.of("wecom") if "已恢复" in m.text], 30,
                            what="the resolved notice")[0]
            assert done.text.startswith("pc-7 非正常关机 (unclean_shutdown)")
        finally:
            stop(agent)
            server.send_signal(signal.SIGTERM)
            server.wait(20)
            log.close()
    assert server.returncode == 0, (tmp_path / "server.log").read_text()
