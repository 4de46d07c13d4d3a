"""Alerts and the fault register (故障登记簿): rules, routing, notification, tickets.

Pure logic lives in ``rules``, ``routing`` and ``messages``; ``store``/``faultlog`` hold the SQL;
``engine`` (evaluation) and ``notify`` (delivery through apprise) are the threads at the edges.
"""
