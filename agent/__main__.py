"""``python -m agent``: the agent alone (no click, no server code) — what the service runs.

Same options as ``bbt agent run``: --config FILE --broker URL --school S --device D.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="bbt-agent", description="bbt classroom agent")
    ap.add_argument("--config", default=None, help="agent INI file")
    ap.add_argument("--broker", default=None)
    ap.add_argument("--school", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    from agent.service import run_foreground
    from bbt.errors import BbtError

    try:
        run_foreground(args.config, {"broker": args.broker, "school": args.school, "device": args.device},
                       args.verbose)
    except BbtError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
