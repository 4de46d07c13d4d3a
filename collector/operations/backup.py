"""Online backups and restore: SQLite through its backup API, PostgreSQL through pg_dump/pg_restore.

A backup is one file ``bbt-YYYYMMDDTHHMMSSZ.db`` (SQLite) or ``.pgdump`` (PostgreSQL, custom
format), written to a temporary name and renamed when complete, so a half-written backup never
looks like a good one. With a key (``--key`` / BBT_BACKUP_KEY, made by ``bbt deploy keys``) the
file is encrypted (AES-256-GCM in 1 MiB chunks, ``.enc``): a lost backup discloses nothing.
Only the newest ``keep`` backups in the folder are kept.
"""
from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from collector import migrations
from collector.db import Database, connect
from common.errors import BbtError

MAGIC = b"BBTBAK1\n"
CHUNK = 1 << 20
PATTERN = ("bbt-", (".db", ".pgdump", ".db.enc", ".pgdump.enc"))


class BackupError(BbtError):
    pass


# -- encryption ------------------------------------------------------------------

def make_key(path: Path) -> bool:
    """Write a new random backup key (base64, mode 0600) unless one exists; True when made."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode("ascii") + "\n")
    return True


def load_key(path: str) -> bytes:
    try:
        key = base64.b64decode(Path(path).read_text(encoding="ascii").strip(), validate=True)
    except OSError as e:
        raise BackupError(f"cannot read the backup key {path}: {e.strerror}") from None
    except ValueError:
        raise BackupError(f"{path} is not a bbt backup key (base64 of 32 bytes)") from None
    if len(key) != 32:
        raise BackupError(f"{path} is not a bbt backup key (base64 of 32 bytes)")
    return key


def encrypt_file(src: Path, dst: BinaryIO, key: bytes) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes, salt = AESGCM(key), os.urandom(8)
    dst.write(MAGIC + salt)
    with src.open("rb") as f:
        n, chunk = 0, f.read(CHUNK)
        while True:
            nxt = f.read(CHUNK)
            last = not nxt
            nonce = salt + struct.pack(">I", n)
            ct = aes.encrypt(nonce, chunk, MAGIC + (b"\x01" if last else b"\x00"))
            dst.write(struct.pack(">I", len(ct)) + ct)
            if last:
                return
            n, chunk = n + 1, nxt


def decrypt_file(src: Path, dst: BinaryIO, key: bytes) -> None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(key)
    with src.open("rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise BackupError(f"{src} is not an encrypted bbt backup")
        salt, n = f.read(8), 0
        while True:
            head = f.read(4)
            if len(head) < 4:
                raise BackupError(f"{src} is truncated (its last part is missing)")
            ct = f.read(struct.unpack(">I", head)[0])
            nonce = salt + struct.pack(">I", n)
            last = False
            try:
                dst.write(aes.decrypt(nonce, ct, MAGIC + b"\x00"))
            except InvalidTag:
                try:
                    dst.write(aes.decrypt(nonce, ct, MAGIC + b"\x01"))
                    last = True
                except InvalidTag:
                    raise BackupError(f"{src}: wrong key, or the file was altered") from None
            if last:
                if f.read(1):
                    raise BackupError(f"{src} has data after its last part (altered)")
                return
            n += 1


# -- backup ------------------------------------------------------------------------

def _stamp(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def _sqlite_backup(src_path: str, dst: Path) -> None:
    src = sqlite3.connect(src_path, timeout=30)
    try:
        out = sqlite3.connect(str(dst))
        try:
            # one step, inside one read transaction: in WAL mode writers go on meanwhile. (A stepped
            # backup restarts whenever another connection writes, so under a busy collector it would
            # never finish — measured in bench/backup.py.)
            src.backup(out)
            ok = out.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            out.close()
    finally:
        src.close()
    if ok != "ok":
        raise BackupError(f"the backup copy failed its integrity check: {ok}")


def _pg_dump(url: str, dst: Path) -> None:
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed (apt-get install postgresql-client)")
    r = subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--file={dst}", f"--dbname={url}"],
                       capture_output=True, text=True)
    if r.returncode:
        raise BackupError(f"pg_dump failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")


def backup(db: Database, out_dir: str | Path, keep: int = 14, key: bytes | None = None,
           now: float | None = None) -> Path:
    """Write one consistent backup of the live store into ``out_dir``; prune to the newest ``keep``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot create the backup folder {out}: {e.strerror}") from None
    ext = ".db" if db.dialect == "sqlite" else ".pgdump"
    final = out / f"bbt-{_stamp(now or time.time())}{ext}{'.enc' if key else ''}"
    with tempfile.TemporaryDirectory(dir=out, prefix=".bbt-backup-") as tmp:
        plain = Path(tmp) / f"plain{ext}"
        if db.dialect == "sqlite":
            _sqlite_backup(db.url, plain)
        else:
            _pg_dump(db.url, plain)
        part = Path(tmp) / "part"
        if key:
            with part.open("wb") as f:
                encrypt_file(plain, f, key)
                f.flush()
                os.fsync(f.fileno())
        else:
            plain.rename(part)
        os.chmod(part, 0o600)
        os.replace(part, final)
    prune(out, keep)
    return final


def list_backups(out_dir: str | Path) -> list[Path]:
    """Backups in the folder, oldest first (their names sort by time)."""
    prefix, exts = PATTERN
    return sorted(p for p in Path(out_dir).glob(prefix + "*") if p.name.endswith(exts) and p.is_file())


def prune(out_dir: str | Path, keep: int) -> list[Path]:
    if keep < 1:
        raise BackupError("--keep must be at least 1")
    old = list_backups(out_dir)[:-keep]
    for p in old:
        p.unlink()
    return old


# -- restore -------------------------------------------------------------------------

@contextmanager
def _plain(file: Path, key: bytes | None) -> Iterator[Path]:
    with file.open("rb") as f:
        encrypted = f.read(len(MAGIC)) == MAGIC
    if not encrypted:
        yield file
        return
    if key is None:
        raise BackupError(f"{file} is encrypted: give the backup key (--key or BBT_BACKUP_KEY)")
    with tempfile.TemporaryDirectory(prefix="bbt-restore-") as tmp:
        out = Path(tmp) / "plain"
        with out.open("wb") as f:
            decrypt_file(file, f, key)
        yield out


def restore(file: str | Path, db_url: str | None, key: bytes | None = None) -> Database:
    """Replace the store's content with the backup's, then bring its schema up to date."""
    src = Path(file)
    if not src.is_file():
        raise BackupError(f"backup file {src} not found")
    is_pg = ".pgdump" in src.name
    db = connect(db_url)
    if (db.dialect == "postgresql") != is_pg:
        db.close()
        raise BackupError(f"{src.name} is a {'PostgreSQL' if is_pg else 'SQLite'} backup; the store {db.dialect}")
    with _plain(src, key) as plain:
        if is_pg:
            _pg_restore(db, plain)
        else:
            _sqlite_restore(db, plain)
    migrations.migrate(db)
    return db


def _sqlite_restore(db: Database, plain: Path) -> None:
    src = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
    try:
        ok = src.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise BackupError(f"the backup is damaged: {ok}")
        db.close()
        dst = sqlite3.connect(db.url, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as e:
        raise BackupError(f"not a SQLite backup: {e}") from None
    finally:
        src.close()


def _pg_restore(db: Database, plain: Path) -> None:
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed (apt-get install postgresql-client)")
    with db.transaction():
        db.execute("DROP SCHEMA public CASCADE")
        db.execute("CREATE SCHEMA public")
    r = subprocess.run(["pg_restore", "--no-owner", "--single-transaction", "--exit-on-error",
                        f"--dbname={db.url}", str(plain)], capture_output=True, text=True)
    if r.returncode:
        raise BackupError(f"pg_restore failed: {r.stderr.strip()[-300:]}")
