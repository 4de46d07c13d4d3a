"""The wire protocol shared by agent and collector (docs/protocol.md §1; stdlib only, Python 3.8+)."""
from protocol.v1 import *  # noqa: F401,F403
from protocol.v1 import Rejected, Topic  # noqa: F401
