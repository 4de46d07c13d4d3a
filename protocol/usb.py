"""The USB policy (protocol 1.2, policy key ``usb``; docs/collector.md "USB policy"): stdlib only,
Python 3.8+, shared by the agent and the collector. :func:`usb_allowed` is the one owner of the
allow-list rule (the alert rule and the agent's block ask it)."""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

# absent means every volume is reported, none blocked
DEFAULT_USB: Dict[str, Any] = {"allow_labels": [], "allow_ids": [], "block": False}
USB_ID_RE = re.compile(r"\A[0-9a-fA-F]{4}:[0-9a-fA-F]{4}\Z")


def usb_policy_problem(usb: object) -> Optional[str]:
    """What is wrong with a policy.usb value, as a sentence naming it, or None."""
    if not isinstance(usb, dict):
        return "policy.usb must be an object, got %s" % type(usb).__name__
    unknown = sorted(set(usb) - set(DEFAULT_USB))
    if unknown:
        return "policy.usb has unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(DEFAULT_USB)))
    labels = usb.get("allow_labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        return "policy.usb.allow_labels must be a list of non-empty volume labels"
    ids = usb.get("allow_ids", [])
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        return "policy.usb.allow_ids must be a list of vendor:product ids, e.g. \"0781:5581\""
    bad = [x for x in ids if not USB_ID_RE.match(x)]
    if bad:
        return "policy.usb.allow_ids: %r is not vendor:product (4 hex digits each, e.g. \"0781:5581\")" % bad[0][:40]
    if not isinstance(usb.get("block", False), bool):
        return "policy.usb.block must be true or false"
    return None


def normalized_usb(usb: Dict[str, Any]) -> Dict[str, Any]:
    """A checked policy.usb over the defaults: labels trimmed, ids in lower case."""
    return {"allow_labels": [x.strip() for x in usb.get("allow_labels", [])],
            "allow_ids": [x.lower() for x in usb.get("allow_ids", [])], "block": bool(usb.get("block", False))}


def usb_allowed(usb_policy: Dict[str, Any], label: str, vendor_id: str = "", product_id: str = "") -> bool:
    """Whether a volume is on the school's USB allow-list: its label (case-insensitive, exact) or its
    vendor:product id."""
    labels = {x.strip().casefold() for x in usb_policy.get("allow_labels", [])}
    if label and label.strip().casefold() in labels:
        return True
    ids = {x.lower() for x in usb_policy.get("allow_ids", [])}
    return bool(vendor_id and product_id) and ("%s:%s" % (vendor_id, product_id)).lower() in ids
