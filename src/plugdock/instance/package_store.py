"""Installed packages' bytes in the shared database, so every replica can fetch their code.

Content-addressed by sha256 and chunked (≤ 1 MiB a row, well under MariaDB's
``max_allowed_packet``). The installer stores a package in the same transaction as the
installation row that names it, so a replica that sees the row can always fetch the bytes;
:func:`sweep` drops packages no row names any more, in the transaction that stopped naming
them. Nothing read back is trusted: :func:`fetch_to` hashes what it wrote and refuses a
mismatch, and the materializer verifies the package like an install does::

    with engine.begin() as conn:
        store_package(conn, staged_zip, sha256)        # beside add_installation(...)
    with connect_read(engine) as conn:
        fetch_to(conn, sha256, Path("/tmp/x.zip"))     # PackageError when missing or corrupt
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, delete, func, insert, select

from plugdock.core.db import addon_installations, plugin_package_chunks, plugin_packages, utcnow
from plugdock.errors import PackageError

CHUNK_BYTES = 1024 * 1024


def store_package(conn: Connection, path: Path, sha256: str) -> int:
    """Put the file at ``path`` in the store as ``sha256``, in the caller's transaction.

    The bytes are hashed as they are read, so a file that changed since it was verified
    raises :class:`PackageError` (rolling the caller's operation back). A package already
    stored under that sha256 is written again: that also heals a damaged copy. Returns
    the size.
    """
    conn.execute(delete(plugin_package_chunks).where(plugin_package_chunks.c.sha256 == sha256))
    conn.execute(delete(plugin_packages).where(plugin_packages.c.sha256 == sha256))
    digest = hashlib.sha256()
    size = 0
    seq = 0
    with path.open("rb") as file:
        # The row goes first (the chunks name it) with the size the file has now; what is
        # read must match it and the sha256, or the caller's transaction rolls back.
        expected = os.fstat(file.fileno()).st_size
        chunks = -(-expected // CHUNK_BYTES)
        conn.execute(
            insert(plugin_packages).values(
                sha256=sha256,
                size=expected,
                chunks=chunks,
                stored_at=utcnow(),
            )
        )
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
            conn.execute(insert(plugin_package_chunks).values(sha256=sha256, seq=seq, data=chunk))
            size += len(chunk)
            seq += 1
    if digest.hexdigest() != sha256 or (size, seq) != (expected, chunks):
        raise PackageError(f"{path} changed after it was verified; not storing it")
    return size


def sweep(conn: Connection) -> int:
    """Delete the packages no installation names, in the caller's transaction; how many."""
    referenced = select(addon_installations.c.package_sha256)
    gone = conn.execute(
        select(func.count())
        .select_from(plugin_packages)
        .where(plugin_packages.c.sha256.not_in(referenced))
    ).scalar_one()
    if gone:
        conn.execute(
            delete(plugin_package_chunks).where(plugin_package_chunks.c.sha256.not_in(referenced))
        )
        conn.execute(delete(plugin_packages).where(plugin_packages.c.sha256.not_in(referenced)))
    return int(gone)


def fetch_to(
    conn: Connection,
    sha256: str,
    dest: Path,
    *,
    after_chunk: Callable[[int], None] | None = None,
) -> int:
    """Write the stored package ``sha256`` to ``dest``; its size. Refuses a missing or bad one.

    The chunks are read by one statement (one snapshot on every database), streamed, and
    the result must have the recorded size, chunk count and sha256. ``after_chunk(seq)``
    runs after each chunk is written (a failpoint in the materializer).
    """
    head = conn.execute(select(plugin_packages).where(plugin_packages.c.sha256 == sha256)).first()
    if head is None:
        raise PackageError(f"package {sha256[:12]} is not in the database's package store")
    digest = hashlib.sha256()
    size = 0
    expected_seq = 0
    rows = conn.execution_options(stream_results=True, yield_per=4).execute(
        select(plugin_package_chunks.c.seq, plugin_package_chunks.c.data)
        .where(plugin_package_chunks.c.sha256 == sha256)
        .order_by(plugin_package_chunks.c.seq)
    )
    with dest.open("wb") as file:
        for seq, data in rows:
            if seq != expected_seq:
                raise PackageError(f"package {sha256[:12]} in the store is missing chunk {seq}")
            data = bytes(data)
            file.write(data)
            digest.update(data)
            size += len(data)
            expected_seq += 1
            if after_chunk is not None:
                after_chunk(seq)
    if expected_seq != head.chunks or size != head.size:
        raise PackageError(
            f"package {sha256[:12]} in the store is incomplete ({expected_seq} of "
            f"{head.chunks} chunks, {size} of {head.size} bytes)"
        )
    if digest.hexdigest() != sha256:
        raise PackageError(
            f"package {sha256[:12]} in the store is corrupt (its bytes hash to "
            f"{digest.hexdigest()[:12]})"
        )
    return size


@dataclass(frozen=True)
class StoreProblem:
    problem: str
    repairable: bool


def check(conn: Connection, scratch: Path) -> list[StoreProblem]:
    """For doctor: every package an installation names is stored and intact; no leftovers.

    Each package is read back in full (into ``scratch``, removed afterwards) and hashed.
    A bad one is repairable when the source still offers the very same bytes.
    """
    problems = []
    rows = conn.execute(
        select(addon_installations.c.plugin_id, addon_installations.c.package_sha256)
    ).all()
    for plugin_id, sha256 in rows:
        try:
            fetch_to(conn, sha256, scratch)
        except PackageError as exc:
            problems.append(StoreProblem(f"{plugin_id}: {exc}", True))
        finally:
            scratch.unlink(missing_ok=True)
    referenced = {sha for _id, sha in rows}
    stored = conn.execute(select(plugin_packages.c.sha256)).scalars().all()
    for sha256 in sorted(set(stored) - referenced):
        problems.append(
            StoreProblem(f"package {sha256[:12]} is stored but no installation names it", True)
        )
    return problems
