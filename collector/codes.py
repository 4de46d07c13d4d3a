"""The one catalogue of fault and alert codes: a label in Chinese and English, what it means and
what to do (written for the maintainer: 检查 HDMI 线 …).

Every page, export and message names a code through ``fault(code)`` / ``alert_kind(kind)``; a code
not listed (an agent newer than this collector) shows as 未知故障（code）, never as an error.
Fault codes are the ``code`` of a fault event (protocol.md §1), of a fault the collector raises
(``clock``), of a fault a person registers (登记故障, ``REGISTER_GROUPS``) and of a teacher's 报修
(``report_`` + one of ``REPORT_CODES``). Alert kinds are alerts.rules' ``kind``.
"""
from __future__ import annotations

from dataclasses import dataclass

LANGS = ("zh", "en")
SEVERITY_ZH = {"info": "提示", "warning": "警告", "critical": "严重"}  # as the dashboard says them


@dataclass(frozen=True)
class Code:
    code: str
    group: str
    zh: str
    en: str
    about_zh: str = ""
    about_en: str = ""
    todo_zh: str = ""
    todo_en: str = ""
    known: bool = True

    def label(self, lang: str = "zh") -> str:
        return self.en if lang == "en" else self.zh

    def about(self, lang: str = "zh") -> str:
        return self.about_en if lang == "en" else self.about_zh

    def todo(self, lang: str = "zh") -> str:
        return self.todo_en if lang == "en" else self.todo_zh


# group -> (zh, en), in the order the 登记故障 select shows them
GROUPS = {
    "power": ("供电", "Power"), "display": ("显示与投影", "Display and projector"), "pc": ("电脑", "PC"),
    "audio": ("声音", "Sound"), "network": ("网络", "Network"), "agent": ("监控程序", "Monitoring agent"),
    "security": ("病毒与补丁", "Antivirus and updates"), "other": ("其他", "Other"),
    "report": ("报修", "Reported by a teacher"), "alert": ("告警", "Alert"),
}

_F = Code
FAULTS: dict[str, Code] = {c.code: c for c in (
    _F("power_cut", "power", "停电", "Power cut", "教室或整栋楼断电。", "The classroom or building lost mains power.",
       "确认停电范围和起止时间，来电后逐台开机检查。",
           "Find out where and how long; switch the PCs on and check them."),
    _F("unclean_shutdown", "power", "非正常关机", "Unclean shutdown",
       "电脑上次没有正常关机（断电、拔插头或死机后强制关机）。", "The PC was not shut down properly last time.",
       "提醒老师用开始菜单关机；多次出现时检查插座和电源。", "Remind teachers to shut down from the Start menu; "
       "if it recurs, check the socket and power supply."),
    _F("display_missing", "display", "投影无信号", "No display signal", "电脑检测不到显示器或投影机。",
       "The PC detects no monitor or projector.", "检查 HDMI/VGA 线是否松动、投影机是否开机及信号源是否选对。",
       "Check the HDMI/VGA cable, that the projector is on and on the right input."),
    _F("projector", "display", "投影机故障", "Projector fault", "投影机不亮、画面异常或灯泡老化。",
       "The projector does not light up or shows a bad picture.", "检查电源、灯泡使用时间和滤网，必要时报厂家维修。",
       "Check power, lamp hours and filter; call the vendor if needed."),
    _F("whiteboard", "display", "白板故障", "Whiteboard fault", "电子白板或触摸屏失灵。",
       "The interactive whiteboard or touch screen does not respond.", "检查 USB 触摸线，重新校准触摸屏。",
       "Check the touch USB cable and recalibrate the screen."),
    _F("pc", "pc", "电脑故障", "PC fault", "班班通电脑硬件或系统故障。", "A hardware or system fault of the PC.",
       "记录现象，检查硬件和系统，必要时更换配件。", "Note the symptoms, check hardware and system, replace parts."),
    _F("disk_full", "pc", "磁盘已满", "Disk full", "系统盘剩余空间不足。", "The system drive is almost full.",
       "清理桌面和下载目录里的大文件、临时文件。", "Clear large files from the desktop, downloads and temp folders."),
    _F("disk_smart", "pc", "硬盘即将损坏", "Disk failing", "硬盘自检（SMART）报告异常。",
       "The disk's self-test (SMART) reports a problem.", "尽快备份资料并更换硬盘。",
       "Back up the data and replace the disk soon."),
    _F("overheat", "pc", "温度过高", "Overheating", "CPU 温度超过上限。", "The CPU is above its temperature limit.",
       "清理风扇和散热口灰尘，检查机柜通风。", "Clean the fan and vents; check the cabinet's airflow."),
    _F("memory_exhausted", "pc", "内存不足", "Out of memory", "内存几乎用尽，电脑会很卡。",
       "Memory is almost used up; the PC is slow.", "关闭不用的程序，检查开机自启动项。",
       "Close unused programs; check what starts with Windows."),
    _F("audio", "audio", "音响故障", "Sound fault", "音箱或功放没有声音。", "No sound from the speakers or amplifier.",
       "检查音箱电源、音量和音频线。", "Check the speakers' power, volume and audio cable."),
    _F("network", "network", "网络故障", "Network fault", "教室电脑不能上网。",
       "The classroom PC cannot reach the network.",
       "检查网线、交换机端口和 IP 设置。", "Check the cable, switch port and IP settings."),
    _F("clock", "agent", "时钟不准", "Clock wrong", "电脑上报的时间比服务器快了 5 分钟以上。",
       "The PC's clock is more than 5 minutes ahead of the server.", "校准系统时间，检查主板电池和时间同步。",
       "Set the clock; check the CMOS battery and time sync."),
    _F("clock_skew", "agent", "时钟偏差", "Clock skew", "电脑时间与校时服务器相差过大。",
       "The PC's clock is off the time server.", "开启时间同步，检查主板电池。",
           "Enable time sync; check the CMOS battery."),
    _F("agent_crash", "agent", "监控程序崩溃", "Agent crashed", "监控程序短时间内多次异常重启。",
       "The monitoring agent restarted several times.", "查看监控程序日志，必要时重新安装。",
       "Read the agent's log; reinstall it if needed."),
    _F("agent_stopped", "agent", "监控程序被停止", "Agent stopped", "电脑开着，但监控服务被人停止了。",
       "The PC kept running but the monitoring service was stopped.", "了解是谁停止的服务，重新启动并设为自动。",
       "Find out who stopped it; restart it and set it to automatic."),
    _F("outbox_overflow", "agent", "离线缓存已满", "Outbox full", "电脑长时间连不上服务器，缓存满后丢弃了部分记录。",
       "The PC was offline so long that its outbox dropped events.", "检查网络和服务器地址设置。",
       "Check the network and the server address."),
    _F("outbox_corrupt", "agent", "离线缓存损坏", "Outbox corrupt", "监控程序的本地缓存文件损坏，已重建。",
       "The agent's local outbox was damaged and rebuilt.", "检查磁盘健康和是否经常断电。",
       "Check the disk's health and for frequent power cuts."),
    _F("policy_refused", "agent", "拒绝了不安全的策略", "Unsafe policy refused",
       "监控程序拒绝执行会拦截系统程序的策略。", "The agent refused a policy that would block system programs.",
       "检查学校策略的禁止规则，删去命中系统程序的条目。", "Check the school policy's deny rules."),
    _F("untrusted_policy", "agent", "策略签名无效", "Untrusted policy", "收到的策略没有有效签名，监控程序未执行。",
       "A policy without a valid signature was ignored.", "检查服务器签名密钥和电脑上固定的公钥。",
       "Check the server's signing key and the key pinned on the PC."),
    _F("virus", "security", "发现病毒", "Virus found", "病毒防护软件发现了尚未清除的威胁。",
       "The antivirus found a threat that is not yet removed.",
       "立即断网查杀，清除后在登记簿记录处理结果；不能清除时报信息中心。",
       "Disconnect and scan now; record the result; report to the IT centre if it cannot be removed."),
    _F("av_off", "security", "病毒防护未开启", "Antivirus off", "电脑没有开启实时病毒防护。",
       "No real-time antivirus protection is on.", "开启 Windows 安全中心或学校统一的杀毒软件。",
       "Turn on Windows Security or the school's antivirus."),
    _F("av_outdated", "security", "病毒库过期", "Virus definitions out of date", "病毒库多日没有更新。",
       "The virus definitions have not been updated for days.", "检查网络和杀毒软件的自动更新，手动更新一次。",
       "Check the network and automatic updates; update once by hand."),
    _F("patches_pending", "security", "安全补丁未安装", "Security updates pending", "有安全补丁长期没有安装。",
       "Security updates have been pending for long.", "课后安装系统更新并重启。",
       "Install the updates after lessons and restart."),
    _F("usb_block_failed", "security", "U盘禁用设置失败", "USB block failed",
       "策略要求禁用 U 盘，但电脑上的设置没能生效。",
       "The policy blocks USB storage, but the setting could not be applied.",
       "检查监控程序是否以管理员/系统权限运行。", "Check that the agent runs as administrator/SYSTEM."),
    _F("other", "other", "其他故障", "Other fault", "其他原因的故障，见故障现象。",
       "Another fault; see its description.",
       "按故障现象处理。", "Act on the description."),
)}

# a teacher's 报修 (dashboard: /faults/repair), stored as report_<code>
REPORT_CODES = ("no_power", "display_missing", "no_sound", "projector", "touch", "network", "slow", "other")
_REPORTS = {
    "no_power": ("无法开机", "Won't power on", "检查电源插座、电源线和主机电源。",
        "Check socket, cable and power supply."),
    "display_missing": ("无显示/投影不亮", "No picture", "检查 HDMI/VGA 线、投影机电源和信号源。",
                        "Check the HDMI/VGA cable, projector power and input."),
    "no_sound": ("没有声音", "No sound", "检查音箱电源、音量和音频线。", "Check speakers, volume and audio cable."),
    "projector": ("投影/显示异常", "Bad picture", "检查投影机灯泡、滤网和线缆。", "Check the lamp, filter and cables."),
    "touch": ("触摸/白板失灵", "Touch not working", "检查触摸 USB 线，重新校准。",
        "Check the touch USB cable; recalibrate."),
    "network": ("不能上网", "No network", "检查网线、交换机端口和 IP 设置。",
        "Check cable, switch port and IP settings."),
    "slow": ("运行很慢/死机", "Slow or freezing", "检查磁盘空间、内存和开机启动项。",
        "Check disk space, memory, startup programs."),
    "other": ("其他", "Other", "按故障描述处理。", "Act on the description."),
}
for _c, (_zh, _en, _todo_zh, _todo_en) in _REPORTS.items():
    FAULTS["report_" + _c] = Code("report_" + _c, "report", "报修：" + _zh, "Reported: " + _en.lower(),
                                  "老师报修：" + _zh, "A teacher reported: " + _en.lower(), _todo_zh, _todo_en)

# 登记故障: what a maintainer may register (also afterwards: a power cut with its start and end)
REGISTER_GROUPS = ("power", "display", "pc", "audio", "network", "other")
REGISTERABLE = ("power_cut", "display_missing", "projector", "whiteboard", "pc", "disk_full", "disk_smart", "overheat",
                "audio", "network", "other")

_A = Code
ALERT_KINDS: dict[str, Code] = {c.code: c for c in (
    _A("fault", "alert", "故障", "Fault", "设备有未恢复的故障。", "A device has an open fault.", "见故障登记簿。",
       "See the fault register."),
    _A("offline_in_lesson", "alert", "上课时间离线", "Offline during a lesson", "上课时班班通电脑离线。",
       "The classroom PC is offline during a lesson.", "查看是否断电、断网或被关机。",
       "Check for a power cut, network loss or shutdown."),
    _A("floor_offline", "alert", "整层离线", "Whole floor offline", "同一楼层多数设备同时离线。",
       "Most devices of a floor went offline together.", "检查该层的电源和网络交换机。",
       "Check the floor's power and network switch."),
    _A("building_offline", "alert", "整栋楼离线", "Whole building offline", "一栋楼多数设备同时离线。",
       "Most devices of a building went offline together.", "检查该楼总电源和网络。",
           "Check the building's power and network."),
    _A("left_on", "alert", "未关机", "Left on", "最后一节课后或夜间电脑仍未关机。",
       "The PC is still on after the last lesson or at night.", "提醒班主任课后关机（制度：用后关机断电）。",
       "Remind the class teacher to shut down after use."),
    _A("agent_silent", "alert", "长时间无消息", "Silent for long", "上课日长时间没有收到这台电脑的消息。",
       "No message from this PC for a long time on school days.", "检查电脑是否开机、联网，监控程序是否运行。",
       "Check that the PC is on, online and the agent runs."),
    _A("software_denied", "alert", "违规软件", "Prohibited software", "发现或拦截了禁止的软件（如游戏）。",
       "A prohibited program (e.g. a game) was found or blocked.", "核实使用人，卸载该软件。",
       "Find out who used it; uninstall it."),
    _A("drift", "alert", "配置被改", "Configuration changed", "计算机名、IP、MAC 或工作组被修改。",
       "The hostname, IP, MAC or workgroup changed.", "核实是否经过批准，必要时改回。",
           "Check it was approved; revert if not."),
    _A("new_software", "alert", "新装软件", "New software", "电脑上出现了新安装的程序。",
       "A new program was installed.",
       "核实软件来源是否合规。", "Check where it came from."),
    _A("unclean_shutdowns", "alert", "多次非正常关机", "Repeated unclean shutdowns", "一周内多次没有正常关机。",
       "Several unclean shutdowns within a week.", "检查电源和插座，提醒老师正常关机。",
       "Check power and socket; remind teachers to shut down properly."),
    _A("usage_below", "alert", "使用率未达标", "Usage below threshold", "本周班班通使用率低于达标线。",
       "This week's usage rate is below the threshold.", "了解原因，是否有设备故障。",
           "Find out why; look for faults."),
    _A("usb", "alert", "未登记的U盘", "Unlisted USB drive", "插入了不在学校允许清单上的 U 盘。",
       "A USB drive that is not on the school's list was plugged in.",
       "提醒任课老师：严禁使用无关U盘；必要时查杀病毒。",
       "Remind the teacher: no unrelated USB drives; scan for viruses if needed."),
    _A("projector_left_on", "alert", "投影机未关闭", "Projector left on",
       "放学后或夜间投影机/一体机仍然开着，灯泡在空耗。",
       "The projector or panel is still on after school or at night.",
       "到教室关闭投影机；设置“随电脑关闭投影机”。", "Switch it off in the classroom; set the policy to switch it off "
       "with the PC."),
    _A("projector_lamp", "alert", "投影机灯泡到期", "Projector lamp hours",
       "投影机灯泡使用时间超过了设定的小时数。", "The projector lamp has run past its set hours.",
       "准备备用灯泡，安排更换。", "Order a spare lamp and schedule the change."),
    _A("outside_use", "alert", "课外使用", "Use outside lessons", "课外时间电脑被长时间使用。",
       "The PC was used for long outside lessons.", "提醒班主任：不得允许学生单独使用。",
       "Remind the class teacher: students may not use it alone."),
)}


def fault(code: str | None) -> Code:
    """The catalogue entry of a fault code; an unknown code gets 未知故障（code）."""
    c = FAULTS.get(code or "")
    if c is not None:
        return c
    raw = str(code or "")
    return Code(raw, "other", f"未知故障（{raw}）", f"Unknown fault ({raw})", known=False)


def alert_kind(kind: str | None) -> Code:
    c = ALERT_KINDS.get(kind or "")
    if c is not None:
        return c
    raw = str(kind or "")
    return Code(raw, "alert", f"未知告警（{raw}）", f"Unknown alert ({raw})", known=False)


def fault_label(code: str | None, lang: str = "zh") -> str:
    return fault(code).label(lang)


def alert_label(kind: str | None, code: str | None = None, lang: str = "zh") -> str:
    """An alert's name: a fault alert by its fault code, any other by its kind."""
    return fault_label(code, lang) if kind == "fault" else alert_kind(kind).label(lang)


def report_choices(lang: str = "zh") -> list[tuple[str, str]]:
    """The 报修 form's choices: [(code without report_, the teacher's words)]."""
    return [(c, _REPORTS[c][1 if lang == "en" else 0]) for c in REPORT_CODES]


def registerable(code: str) -> bool:
    """Whether a person may register this code (登记故障, or a teacher's 报修)."""
    return code in REGISTERABLE or (code.startswith("report_") and code[7:] in REPORT_CODES)


def register_choices(lang: str = "zh") -> list[tuple[str, list[tuple[str, str]]]]:
    """The 登记故障 select: [(group label, [(code, label)])] in the catalogue's order."""
    out = []
    for g in REGISTER_GROUPS:
        items = [(c, FAULTS[c].label(lang)) for c in REGISTERABLE if FAULTS[c].group == g]
        if items:
            out.append((GROUPS[g][1 if lang == "en" else 0], items))
    return out


def all_codes() -> set[str]:
    """Every code and kind the catalogue names (a page must never show one of them bare)."""
    return set(FAULTS) | set(ALERT_KINDS)
