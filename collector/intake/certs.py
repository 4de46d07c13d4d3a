"""`bbt deploy certs`: a school CA, the broker's server certificate, per-device client certificates,
the collector's client certificate, the command-signing key and a Mosquitto TLS listener config.

Everything is made with the ``cryptography`` package. Re-running on the same folder keeps the CA,
the signing key and existing device certificates (so agents already deployed stay valid) and adds
what is missing.
"""
from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import protocol
from common import signing
from common.errors import BbtError

ROOT = Path(__file__).resolve().parent.parent.parent
TLS_TEMPLATE = ROOT / "deploy" / "mosquitto" / "tls.conf"
COLLECTOR_ID = "bbt-collector"
CA_DAYS = 365 * 20
LEAF_DAYS = 365 * 10


class CertError(BbtError, ValueError):
    pass


@dataclass
class CertPlan:
    school: str
    out: Path
    hosts: list[str] = field(default_factory=lambda: ["localhost", "127.0.0.1"])
    devices: list[str] = field(default_factory=list)
    port: int = 8883
    bind: str = ""
    broker_host: str = ""  # the host name agents connect to (default: the first of hosts)


@dataclass
class CertResult:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def read_devices_csv(path: str) -> list[str]:
    """Device ids from a CSV with a ``device`` column (the devices import file)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "device" not in [c.strip() for c in reader.fieldnames]:
                raise CertError(f"{path}: no 'device' column in the header")
            out: list[str] = []
            for line, row in enumerate(reader, start=2):
                dev = (row.get("device") or "").strip()
                if not protocol.valid_id(dev):
                    raise CertError(f"{path} line {line}: device {dev!r} must match {protocol.ID_PATTERN}")
                if dev not in out:
                    out.append(dev)
            return out
    except OSError as e:
        raise CertError(f"cannot read {path}: {e.strerror}") from None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(school: str, cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bbt"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, school),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def load_or_make_ca(plan: CertPlan, res: CertResult) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = plan.out / "ca.key", plan.out / "ca.crt"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertError(f"{key_path} is not an EC private key made by bbt")
        res.kept.append(str(cert_path))
        return key, cert
    key = _new_key()
    name = _name(plan.school, f"bbt school CA {plan.school}")
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, _key_pem(key))
    _write_public(cert_path, _cert_pem(cert))
    res.created.append(str(cert_path))
    return key, cert


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def issue(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, school: str, cn: str, server: bool,
          hosts: list[str] | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate signed by the school CA (server: with SANs; client: CN = identity)."""
    key = _new_key()
    now = _now()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    b = (x509.CertificateBuilder().subject_name(_name(school, cn)).issuer_name(ca.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if server:
        b = b.add_extension(_san(hosts or []), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def _leaf(plan: CertPlan, res: CertResult, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
          stem: Path, cn: str, server: bool = False, force: bool = False) -> None:
    crt, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
    if crt.exists() and key_path.exists() and not force:
        res.kept.append(str(crt))
        return
    key, cert = issue(ca_key, ca, plan.school, cn, server, plan.hosts)
    _write_private(key_path, _key_pem(key))
    _write_public(crt, _cert_pem(cert))
    res.created.append(str(crt))


def agent_ini(plan: CertPlan, device: str, public_key: str) -> str:
    host = plan.broker_host or plan.hosts[0]
    return (f"# bbt agent configuration for {plan.school}/{device}, made by `bbt deploy certs`.\n"
            "# Copy this folder to the PC (e.g. C:\\ProgramData\\bbt\\ or /etc/bbt/); paths are relative to it.\n"
            "[agent]\n"
            f"broker = mqtts://{host}:{plan.port}\n"
            f"school = {plan.school}\n"
            f"device = {device}\n"
            "ca_file = ca.crt\n"
            "cert_file = client.crt\n"
            "key_file = client.key\n"
            f"command_key = {public_key}\n")


def mosquitto_files(plan: CertPlan) -> tuple[str, str]:
    """The TLS listener config (from deploy/mosquitto/tls.conf) and the ACL it points to."""
    certs = str(plan.out.resolve())
    conf = TLS_TEMPLATE.read_text(encoding="utf-8").format(port=plan.port, bind=plan.bind, certs=certs)
    s = plan.school
    acl = (f"# bbt ACL for school {s}: each device (certificate CN = username) only its own topics.\n"
           f"topic read bbt/v1/{s}/policy\n"
           f"pattern write bbt/v1/{s}/%u/status\n"
           f"pattern write bbt/v1/{s}/%u/events\n"
           f"pattern write bbt/v1/{s}/%u/cmd/ack\n"
           f"pattern read bbt/v1/{s}/%u/cmd\n\n"
           f"user {COLLECTOR_ID}\ntopic readwrite bbt/v1/#\n")
    return conf, acl


def _broker_can_read(out: Path) -> None:
    """Debian's Mosquitto drops to the 'mosquitto' user before loading its key: let that group read it."""
    try:
        import grp

        gid = grp.getgrnam("mosquitto").gr_gid
    except (ImportError, KeyError):
        return
    if os.geteuid() != 0:
        return
    key = out / "server.key"
    os.chown(key, -1, gid)
    os.chmod(key, 0o640)


def make_certs(plan: CertPlan, force_devices: bool = False) -> CertResult:
    if not protocol.valid_id(plan.school):
        raise CertError(f"school {plan.school!r} must match {protocol.ID_PATTERN}")
    if not plan.hosts:
        raise CertError("give at least one --host for the broker's certificate")
    for d in plan.devices:
        if not protocol.valid_id(d) or d == COLLECTOR_ID:
            raise CertError(f"device {d!r} must match {protocol.ID_PATTERN} and not be {COLLECTOR_ID}")
    res = CertResult()
    plan.out.mkdir(parents=True, exist_ok=True)
    ca_key, ca = load_or_make_ca(plan, res)
    _leaf(plan, res, ca_key, ca, plan.out / "server", plan.hosts[0], server=True, force=True)
    _leaf(plan, res, ca_key, ca, plan.out / COLLECTOR_ID, COLLECTOR_ID)
    pub = signing.ensure_keypair(plan.out / "command-signing.key", res.created, res.kept)
    for d in plan.devices:
        folder = plan.out / "devices" / d
        _leaf(plan, res, ca_key, ca, folder / "client", d, force=force_devices)
        _write_public(folder / "ca.crt", _cert_pem(ca))
        (folder / "agent.ini").write_text(agent_ini(plan, d, pub), encoding="utf-8")
    _broker_can_read(plan.out)
    conf, acl = mosquitto_files(plan)
    (plan.out / "mosquitto-tls.conf").write_text(conf, encoding="utf-8")
    (plan.out / "mosquitto.acl").write_text(acl, encoding="utf-8")
    res.created += [str(plan.out / "mosquitto-tls.conf"), str(plan.out / "mosquitto.acl")]
    return res
