"""The bbt classroom agent (Python 3.8+): probes -> local outbox -> MQTT."""
