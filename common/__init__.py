"""Floor one: what every layer of bbt stands on (errors, MQTT settings, signing, the wire of enrolment
and the version). Imports nothing of agent/, collector/, alerts/, dashboard/ or bbt/; Python 3.8 and the
standard library (plus cryptography for signing), since the agent on the classroom PCs imports it."""
__version__ = "0.1.0"
