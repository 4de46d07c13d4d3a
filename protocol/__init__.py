"""The wire contract shared by agent and collector (stdlib only, Python 3.8+)."""
from protocol.v1 import *  # noqa: F401,F403
from protocol.v1 import Rejected, Topic  # noqa: F401
