"""Windows service host (pywin32): ``bbt-agent.exe service`` is what the Service Control Manager
starts. Stop and OS shutdown set the stop event: the agent sends power "off" and a clean status.
Only imported on Windows; the installer (agent/install.py) is tested with a fake command runner.
"""
from __future__ import annotations

import threading
from typing import Any, List

SERVICE_NAME = "bbt-agent"
DISPLAY_NAME = "bbt 班班通 classroom agent"


def main(argv: List[str]) -> int:  # pragma: no cover - needs Windows and pywin32
    import servicemanager  # type: ignore[import-not-found,unused-ignore]
    import win32service  # type: ignore[import-not-found,unused-ignore]
    import win32serviceutil  # type: ignore[import-not-found,unused-ignore]

    from agent.service import run

    class AgentService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = "Reports power, usage, software and faults of this classroom PC to the school's bbt server."

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self.stop = threading.Event()

        def GetAcceptedControls(self) -> int:  # noqa: N802 - pywin32 names
            return int(super().GetAcceptedControls()) | win32service.SERVICE_ACCEPT_SHUTDOWN

        def SvcStop(self) -> None:  # noqa: N802
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=15000)
            self.stop.set()

        SvcShutdown = SvcStop  # the PC shuts down: report power "off" too

        def SvcDoRun(self) -> None:  # noqa: N802
            run(self.stop, None, {})  # the same entry as the foreground: supervises a self-update

    if not argv:
        servicemanager.Initialize()
        servicemanager.PrepareToHostSingle(AgentService)
        servicemanager.StartServiceCtrlDispatcher()
        return 0
    win32serviceutil.HandleCommandLine(AgentService, argv=["bbt-agent"] + argv)
    return 0
