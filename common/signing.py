"""Ed25519 signatures on commands and policies (collector signs, agent verifies). Python 3.8+.

A signed object carries, next to its v1 keys (unknown keys are ignored, protocol.md §1):

    "issued":  RFC 3339 time it was made (added when missing),
    "expires": RFC 3339 time after which it must not be executed (commands),
    "sig":     "ed25519:<kid>:<base64 signature>"   (kid: 16 hex of the public key's SHA-256)

The signature covers the canonical JSON of the object without ``sig`` (sorted keys, no spaces,
UTF-8), so any change to any other key breaks it. Replays are stopped by :class:`ReplayGuard`:
a command id is executed at most once and never after ``expires``; a policy older than the last
one accepted is refused.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import protocol
from common.errors import BbtError

ALG = "Ed25519"


class SignatureError(BbtError, ValueError):
    """An object that must not be executed: unsigned, badly signed, expired or replayed."""


def canonical(obj: Dict[str, Any]) -> bytes:
    body = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


# -- keys ----------------------------------------------------------------------

def generate_private_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private(path: "str | Path") -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    except OSError as e:
        raise SignatureError("cannot read the signing key %s: %s" % (path, e.strerror)) from None
    except ValueError:
        raise SignatureError("%s is not a PEM private key" % path) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("%s is not an Ed25519 key" % path)
    return key


def public_b64(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def ensure_keypair(path: Path, created: List[str], kept: List[str]) -> str:
    """Make the command-signing key at ``path`` (0600) unless it exists; write ``.pub``; return it (base64)."""
    if path.exists():
        kept.append(str(path))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(generate_private_pem())
        created.append(str(path))
    pub = public_b64(load_private(path))
    path.with_suffix(".pub").write_text(pub + "\n", encoding="ascii")
    return pub


# -- sign / verify -------------------------------------------------------------

def sign(obj: Dict[str, Any], private_key: Any, ttl_s: Optional[float] = None,
         now: Optional[datetime] = None) -> Dict[str, Any]:
    """A copy of ``obj`` with ``issued`` (and ``expires`` when ttl_s is given) and ``sig``."""
    when = now or _now()
    out = {k: v for k, v in obj.items() if k != "sig" and not k.startswith("_")}
    out.setdefault("issued", protocol.format_time(when))
    if ttl_s is not None:
        out["expires"] = protocol.format_time(when + timedelta(seconds=ttl_s))
    raw = base64.b64decode(public_b64(private_key))
    value = base64.b64encode(private_key.sign(canonical(out))).decode("ascii")
    out["sig"] = "%s:%s:%s" % (ALG.lower(), key_id(raw), value)
    return out


def verify(obj: Any, public_key_b64: str) -> Dict[str, Any]:
    """Check the signature of ``obj`` with the pinned public key; return obj or raise SignatureError."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(obj, dict):
        raise SignatureError("not a JSON object")
    sig = obj.get("sig")
    if not isinstance(sig, str) or not sig:
        raise SignatureError("unsigned: no sig")
    parts = sig.split(":")
    if len(parts) != 3 or parts[0] != ALG.lower():
        raise SignatureError("sig must be ed25519:<kid>:<base64>")
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
        value = base64.b64decode(parts[2], validate=True)
    except ValueError:
        raise SignatureError("bad key or signature encoding") from None
    if parts[1] != key_id(raw):
        raise SignatureError("signed with key %s, not the pinned key %s" % (parts[1], key_id(raw)))
    body = {k: v for k, v in obj.items() if not k.startswith("_")}
    try:
        key.verify(value, canonical(body))
    except InvalidSignature:
        raise SignatureError("signature does not verify (wrong key or altered content)") from None
    return obj


def check_public_key(public_key_b64: str) -> str:
    """Raise SignatureError unless this is a base64 Ed25519 public key; return its key id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignatureError("%r is not a base64 Ed25519 public key" % public_key_b64[:60]) from None
    return key_id(raw)


def _time(obj: Dict[str, Any], key: str) -> datetime:
    try:
        return protocol.parse_time(obj.get(key), key)
    except ValueError as e:
        raise SignatureError("%s: %s" % (key, e)) from None


class ReplayGuard:
    """Remembers executed command ids until they expire, and the newest policy accepted.

    ``get``/``set`` persist small strings (the agent's outbox meta table), so a restart does
    not reopen the window.
    """

    def __init__(self, get: Callable[[str, Optional[str]], Optional[str]], set_: Callable[[str, str], None],
                 max_ttl_s: float = 7 * 86400) -> None:
        self._get = get
        self._set = set_
        self.max_ttl_s = max_ttl_s

    def _seen(self) -> Dict[str, float]:
        try:
            seen = json.loads(self._get("seen_commands", "{}") or "{}")
            return {str(k): float(v) for k, v in seen.items()}
        except (ValueError, AttributeError, TypeError):
            return {}

    def check_command(self, cmd: Dict[str, Any], now: Optional[datetime] = None) -> None:
        """Raise unless the command has an id, is not expired and was never executed; then remember it."""
        when = now or _now()
        cid = cmd.get("id")
        if not isinstance(cid, str) or not cid:
            raise SignatureError("command has no id")
        expires = _time(cmd, "expires")
        issued = _time(cmd, "issued")
        if expires <= when:
            raise SignatureError("command %s expired at %s" % (cid, cmd["expires"]))
        if (expires - issued).total_seconds() > self.max_ttl_s:
            raise SignatureError("command %s is valid for too long" % cid)
        seen = self._seen()
        if cid in seen:
            raise SignatureError("command %s was already executed (replay)" % cid)
        t = when.timestamp()
        seen = {k: v for k, v in seen.items() if v > t}
        seen[cid] = expires.timestamp()
        self._set("seen_commands", json.dumps(seen, separators=(",", ":")))

    def check_policy(self, policy: Dict[str, Any]) -> None:
        """Raise if the policy is older than the newest one accepted; else remember its time."""
        issued = _time(policy, "issued").timestamp()
        last = float(self._get("policy_issued", "0") or 0)
        if issued < last:
            raise SignatureError("policy issued %s is older than the one in force (replay)" % policy["issued"])
        self._set("policy_issued", repr(issued))


# -- the collector's side: sign what goes on the wire ----------------------------------

_KEY_CACHE: Dict[str, Any] = {}


def wire_key() -> Any:
    """The collector's signing key from BBT_SIGNING_KEY (a file made by `bbt deploy certs/keys`), or None."""
    path = os.environ.get("BBT_SIGNING_KEY")
    if not path:
        return None
    if path not in _KEY_CACHE:
        _KEY_CACHE[path] = load_private(path)
    return _KEY_CACHE[path]


def sign_command(cmd: Dict[str, Any], key: Any = None) -> Dict[str, Any]:
    """A command as it goes on the wire: signed with ``key`` (the school's, collector.devices.school_keys) or the
    configured BBT_SIGNING_KEY (its own issued/expires); as it is when there is neither."""
    key = key or wire_key()
    return cmd if key is None else sign(cmd, key)


def sign_policy(policy: Dict[str, Any], now: Optional[datetime] = None, key: Any = None) -> Dict[str, Any]:
    """A policy as it goes on the wire: signed with a fresh ``issued`` (``key``, else BBT_SIGNING_KEY)."""
    key = key or wire_key()
    if key is None:
        return policy
    return sign({k: v for k, v in policy.items() if k not in ("issued", "sig")}, key, now=now)


def accept(obj: Any, public_key_b64: Optional[str], guard: ReplayGuard, kind: str = "command") -> Dict[str, Any]:
    """The agent's gate: verify, then replay-check. Without a pinned key (development) objects pass as is."""
    if not public_key_b64:
        if not isinstance(obj, dict):
            raise SignatureError("not a JSON object")
        return obj
    verify(obj, public_key_b64)
    if kind == "policy":
        guard.check_policy(obj)
    else:
        guard.check_command(obj)
    return obj
