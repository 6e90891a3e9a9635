"""A verdict cache shared by every pytest-xdist worker: SQLite in WAL mode under a directory.

Why: a full run makes thousands of judge calls; a rerun, a second worker, or a resumed run
must not pay for (or wait on) the same bundle twice. Rows are keyed by a content hash of the
judge model, system prompt, question and image pixels (:func:`bundle_key`).

Safety properties, each tested:

- concurrent writers: every write is one ``BEGIN IMMEDIATE`` transaction with a long busy
  time-out; WAL lets readers go on while one worker writes;
- exactly one API call per bundle across workers: a worker *claims* a key before calling the
  judge (:meth:`VerdictCache.claim`); the others wait for the verdict, and take the claim
  over if its owner released it, its lease ran out, or its owner is dead (a claim names its
  owner's host and pid: a process on the same host that no longer exists, e.g. one killed
  with ``kill -9``, holds nothing, so a rerun resumes at once instead of waiting out the lease;
  a live owner renews its claims with a heartbeat, so one on another host lapses a lease
  time-out after it stops, never a whole batch's 24 h);
- a kill mid-write loses at most the uncommitted row (SQLite's atomic commit);
- a corrupt row (bad checksum or record) is deleted and reported as a miss, so the bundle is
  re-judged; a corrupt or truncated database file is moved aside, its readable valid rows
  salvaged into a fresh file (an empty one is rebuilt in place). A row's checksum covers its
  key, so a row moved under another key is a corrupt row too. Each is damage, reported once
  with its path and reason (:attr:`VerdictCache.damaged`, which the run's metadata lists).

No secret is ever stored: rows hold the key hash, the verdict record and its checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from mechinterp.io import file_lock, report_damage
from mechinterp.judges.verdict import Verdict

log = logging.getLogger(__name__)

DB_NAME = "verdicts.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, record TEXT NOT NULL, "
    "checksum TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
    "expires REAL NOT NULL)",
)


def bundle_key(model: str, system: str, question: str, labels: Sequence[str],
               image_digests: Sequence[str]) -> str:
    """Content hash of everything that determines a verdict."""
    payload = json.dumps([model, system, question, list(labels), list(image_digests)],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _init_schema(conn: sqlite3.Connection) -> None:
    """Switch the database to WAL mode and create the tables if missing."""
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in _SCHEMA:
        conn.execute(statement)


def owner_alive(owner: str) -> bool:
    """Whether the process named by a claim's ``host:pid:…`` owner may still be running: ``False`` only
    when it ran on this host and no process with its pid exists (on another host we cannot know)."""
    parts = owner.split(":")
    try:
        host, pid = ":".join(parts[:-2]), int(parts[-2])
    except (IndexError, ValueError):
        return True
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _checksum(key: str, record: str) -> str:
    return hashlib.sha256(f"{key}\n{record}".encode()).hexdigest()


class VerdictCache:
    """The verdict cache in ``cache_dir`` (created if missing). Safe to open from many
    processes at once; each operation uses its own short-lived connection."""

    def __init__(self, cache_dir: str | os.PathLike, busy_timeout: float = 60.0) -> None:
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / DB_NAME
        self.busy_timeout = busy_timeout
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: ``{"path", "reason"}`` of each corrupt row (deleted) or database (rebuilt) this object found
        self.damaged: list[dict] = []
        with self._file_lock():
            self._open_or_recover()

    @property
    def rejected(self) -> int:
        """How many corrupt rows (deleted, re-judged) and databases (rebuilt) this object found."""
        return len(self.damaged)

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.dir)!r})"

    # -- connections and recovery --------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise opening/recovery across processes (not ordinary reads and writes)."""
        with file_lock(self.dir / (DB_NAME + ".lock")):
            yield

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # WAL + NORMAL: a commit survives a killed process (not a power cut) without an fsync
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` takes the write lock up front)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _open_or_recover(self) -> None:
        if self.path.exists() and self.path.stat().st_size == 0 and not Path(str(self.path) + "-wal").exists():
            # SQLite takes an empty file for a new database: say so, since every verdict it held is gone
            report_damage(log, self.damaged, self.path,
                          "verdict cache: empty database file (0 bytes), its verdicts are lost", "rebuilt")
        try:
            conn = self._connect()
            try:
                _init_schema(conn)
                status = conn.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                conn.close()
            if status == "ok":
                return
            reason = f"quick_check: {status}"
        except sqlite3.DatabaseError as err:
            reason = str(err)
        self._recover(reason)

    def _recover(self, reason: str) -> None:
        """Move the damaged file aside and start afresh with whatever rows still verify."""
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}-{os.getpid()}")
        salvaged = self._salvage()
        report_damage(log, self.damaged, self.path, f"verdict cache: unreadable sqlite database: {reason}",
                      f"moved to {aside.name} and rebuilt with its {len(salvaged)} valid rows")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.replace(Path(str(aside) + suffix))
        conn = self._connect()
        try:
            _init_schema(conn)
            conn.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?)", salvaged)
        finally:
            conn.close()

    def _salvage(self) -> list[tuple]:
        rows: list[tuple] = []
        with contextlib.suppress(sqlite3.DatabaseError):
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1)
            try:
                for row in conn.execute("SELECT key, record, checksum, created FROM verdicts"):
                    if _checksum(row[0], row[1]) == row[2]:
                        rows.append(row)
            finally:
                conn.close()
        return rows

    def _guard(self, fn, *args):
        """Run a cache operation; on a damaged database recover once and retry."""
        try:
            return fn(*args)
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
                raise
            with self._file_lock():
                self._recover(str(err))
            return fn(*args)

    # -- verdicts ---------------------------------------------------------------------------
    def get(self, key: str) -> Verdict | None:
        """The cached verdict for ``key`` (``cached=True``), or None. A row that fails its
        checksum or does not decode is deleted and treated as a miss."""
        return self._guard(self._get, key)

    def _get(self, key: str) -> Verdict | None:
        return self._get_many([key])[key]

    def get_many(self, keys: Sequence[str]) -> dict[str, Verdict | None]:
        """:meth:`get` of every key through one connection (a judge looks up a whole batch of bundles at once)."""
        return self._guard(self._get_many, list(keys))

    def _get_many(self, keys: list[str]) -> dict[str, Verdict | None]:
        rows: dict[str, tuple] = {}
        conn = self._connect()
        try:
            for start in range(0, len(keys), 500):  # under SQLite's limit on bound parameters
                part = keys[start:start + 500]
                marks = ",".join("?" * len(part))
                for key, record, checksum in conn.execute(
                        f"SELECT key, record, checksum FROM verdicts WHERE key IN ({marks})", part):
                    rows[key] = (record, checksum)
        finally:
            conn.close()
        return {key: (self._decoded(key, *rows[key]) if key in rows else None) for key in keys}

    def _decoded(self, key: str, record, checksum) -> Verdict | None:
        """A stored row as a verdict; a row that fails its checksum or does not decode is deleted (a miss)."""
        try:
            if not isinstance(record, str) or _checksum(key, record) != checksum:
                raise ValueError("checksum mismatch")
            return Verdict.from_json(record, cached=True)
        except ValueError as err:
            report_damage(log, self.damaged, f"{self.path} row {key[:16]}…", f"verdict cache: corrupt row: {err}",
                          "deleted, it will be re-judged")
            with self._tx() as conn:
                conn.execute("DELETE FROM verdicts WHERE key = ? AND record IS ?", (key, record))
            return None

    def put(self, key: str, verdict: Verdict) -> None:
        """Store ``verdict`` under ``key`` and release any claim on it, atomically."""
        record = verdict.to_json()
        self._guard(self._put, key, record)

    def _put(self, key: str, record: str) -> None:
        self._put_many([(key, record)])

    def put_many(self, items: Sequence[tuple[str, Verdict]]) -> None:
        """:meth:`put` of every ``(key, verdict)`` in one connection and one transaction (rows and claim
        releases exactly as :meth:`put` writes them). Why: a pixel judge decides a whole batch at once, and a
        connection plus a commit per verdict cost more than the decisions; a kill mid-batch loses the batch,
        which is re-decided in milliseconds. A network judge keeps :meth:`put` per verdict, so a kill never
        loses an answer already paid for."""
        rows = [(key, verdict.to_json()) for key, verdict in items]
        if rows:
            self._guard(self._put_many, rows)

    def _put_many(self, rows: list[tuple[str, str]]) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                             [(key, record, _checksum(key, record), now) for key, record in rows])
            conn.executemany("DELETE FROM claims WHERE key = ?", [(key,) for key, _ in rows])

    def __len__(self) -> int:
        conn = self._connect()
        try:
            return conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
        finally:
            conn.close()

    # -- claims (one judge call per bundle across workers) -------------------------------------
    def claim(self, key: str, ttl: float) -> str:
        """Try to become the one worker that judges ``key``.

        Returns ``"done"`` (a verdict is already stored), ``"claimed"`` (ours now, for ``ttl``
        seconds) or ``"busy"`` (another live worker holds it).
        """
        return self._guard(self._claim, key, ttl)

    def _claim(self, key: str, ttl: float) -> str:
        return self._claim_many([key], ttl)[key]

    def claim_many(self, keys: Sequence[str], ttl: float) -> dict[str, str]:
        """:meth:`claim` of every key in one transaction: ``{key: "done" | "claimed" | "busy"}``."""
        return self._guard(self._claim_many, list(keys), ttl)

    def _claim_many(self, keys: list[str], ttl: float) -> dict[str, str]:
        now, out = time.time(), {}
        with self._tx() as conn:
            for key in keys:
                if conn.execute("SELECT 1 FROM verdicts WHERE key = ?", (key,)).fetchone():
                    out[key] = "done"
                    continue
                row = conn.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
                if row is not None and row[0] != self.owner and row[1] > now and owner_alive(row[0]):
                    out[key] = "busy"
                    continue
                conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?)", (key, self.owner, now + ttl))
                out[key] = "claimed"
        return out

    def heartbeat(self, keys: Sequence[str], ttl: float) -> int:
        """Extend our live claims on ``keys`` to ``ttl`` seconds from now (a judge does this while it
        waits on the API), so a claim lapses ``ttl`` after its owner stops beating - on any host."""
        if not keys:
            return 0
        with self._tx() as conn:
            cur = conn.executemany("UPDATE claims SET expires = ? WHERE key = ? AND owner = ?",
                                   [(time.time() + ttl, k, self.owner) for k in keys])
            return cur.rowcount

    def release(self, key: str) -> None:
        """Give up our claim on ``key`` without a verdict (e.g. the call failed)."""
        with contextlib.suppress(sqlite3.DatabaseError):
            with self._tx() as conn:
                conn.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))
