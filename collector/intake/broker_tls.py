"""TLS for the embedded broker (`bbt server --mqtt-tls`): a school CA and a broker certificate made on
first start in the server's data directory, renewed when the host names change. Enrolment hands the CA
to each PC (collector.intake.enrolment), which then trusts only it (common.mqttconf.tls_context).
Made with collector.intake.certs, the same code as `bbt deploy certs`."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from collector.db import default_db_url
from collector.intake import certs

FOLDER = "broker-pki"


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str
    cert_file: str
    key_file: str
    hosts: tuple[str, ...]

    @property
    def ca_pem(self) -> str:
        return Path(self.ca_file).read_text(encoding="ascii")


def data_dir(db_url: str | None) -> Path:
    """Next to the SQLite file, else the data directory's (a PostgreSQL store)."""
    url = db_url or default_db_url()
    if "://" not in url or url.startswith("sqlite:///"):
        return Path(url.replace("sqlite:///", "")).expanduser().resolve().parent
    return Path(default_db_url()).expanduser().resolve().parent


def local_names(extra: list[str]) -> list[str]:
    """Names and addresses PCs may use for this server: the given ones, the host name, its addresses
    and the address of the default route (found without sending anything)."""
    names = list(extra) + [socket.gethostname(), socket.getfqdn(), "localhost", "127.0.0.1"]
    try:
        names += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP: no packet is sent
            names.append(s.getsockname()[0])
    except OSError:
        pass
    seen: list[str] = []
    for n in names:
        if n and n not in seen and n not in ("0.0.0.0", "::"):
            seen.append(n)
    return seen


def _sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | \
        {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def ensure(folder: Path, hosts: list[str]) -> TlsFiles:
    """The CA (kept for good once made) and a broker certificate for ``hosts`` (re-issued when they change)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    plan = certs.CertPlan(school="bbt", out=folder, hosts=hosts)
    res = certs.CertResult()
    ca_key, ca = certs.load_or_make_ca(plan, res)
    crt = folder / "broker.crt"
    stale = crt.exists() and _sans(crt) != set(hosts)
    certs._leaf(plan, res, ca_key, ca, folder / "broker", "bbt-embedded-broker", server=True, force=stale)
    return TlsFiles(str(folder / "ca.crt"), str(crt), str(folder / "broker.key"), tuple(hosts))
