"""The sign-in throttle: failed sign-ins counted per account and per client, in the database.

Every worker and every replica of a panel shares one database, so they share the counts
(a per-process counter lets each worker, and each restart, grant a fresh budget). A
sign-in *reserves* an attempt before the password is checked, in one transaction that
takes the client's bucket and then the account's (always in that order: no deadlocks):

- the client bucket (``client:<address>``; IPv6 by /64, which one host usually owns) allows
  ``client_failures`` attempts per window, the account bucket (``user:<id>``, existing
  users only) ``account_failures``; a client that brings a device token of the account
  (:mod:`plugdock.host.devices`) is counted in its device's bucket (``device:<id>``,
  ``device_failures``) instead of the account's, so guessers elsewhere cannot lock it out;
- a bucket at its limit refuses the reservation (:class:`Throttled`, with the seconds until
  its window ends), so N parallel wrong guesses evaluate at most the limit;
- a successful sign-in gives back only its own reservation (:func:`release`): it never
  clears another account's failures or the client's.

Size is bounded: windows are fixed (``window`` seconds), rows whose window ended are pruned
whenever a new bucket is created, and at most ``max_clients`` live client buckets exist.
Past that (a flood from more addresses than that within one window), new addresses share
one overflow bucket, so a flood of spoofed or rented addresses cannot grow the table or
buy unlimited guesses; accounts keep their own limits throughout::

    reservation = reserve(engine, client_key(request.client.host), f"user:{user.id}")
    ... check the password ...
    release(engine, reservation)        # only when it was right
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from plugdock.core.db import login_throttle, utcnow

log = logging.getLogger(__name__)

CLIENT_PREFIX = "client:"
ACCOUNT_PREFIX = "user:"
DEVICE_PREFIX = "device:"
#: Where attempts from new addresses are counted while ``max_clients`` buckets are live.
OVERFLOW_BUCKET = "client:*overflow*"


@dataclass(frozen=True)
class Limits:
    """Failed sign-ins allowed per window (seconds), and the most live client buckets."""

    client_failures: int = 10
    account_failures: int = 20
    device_failures: int = 10
    window: int = 300
    max_clients: int = 10_000


DEFAULT_LIMITS = Limits()


class Throttled(Exception):
    """Too many failed sign-ins; ``retry_after`` seconds until the bucket's window ends."""

    def __init__(self, retry_after: int, bucket: str) -> None:
        super().__init__(f"too many failed sign-ins for {bucket}; retry in {retry_after} s")
        self.retry_after = retry_after
        self.bucket = bucket


@dataclass(frozen=True)
class Reservation:
    """The attempts one sign-in reserved: (bucket, window start) pairs."""

    slots: tuple[tuple[str, datetime], ...]
    created_bucket: bool = False


def client_key(host: str | None) -> str:
    """The client bucket of an address: IPv4 as is, IPv6 by its /64 network."""
    if not host:
        return f"{CLIENT_PREFIX}unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{CLIENT_PREFIX}{host[:64]}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{CLIENT_PREFIX}{address.ipv4_mapped}"
        return f"{CLIENT_PREFIX}{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"{CLIENT_PREFIX}{address}"


_ATTEMPTS = 10  # a deadlock victim retries; thirty parallel guesses need a few rounds


def reserve(
    engine: Engine,
    client: str,
    account: str | None,
    limits: Limits = DEFAULT_LIMITS,
    *,
    now: datetime | None = None,
) -> Reservation:
    """Reserve one attempt for ``client`` and ``account`` (None: no such user), or Throttled.

    ``account`` is the account's bucket, or its device's for a client that brought a valid
    device token (each with its own limit).

    Both or neither are reserved. Retried on a deadlock or serialization failure, which
    parallel sign-ins creating one bucket (InnoDB's gap locks) or the pruning of another
    transaction cause on PostgreSQL and MariaDB; after a random, growing pause, so the
    transactions that collided do not collide again in lockstep.
    """
    for attempt in range(_ATTEMPTS):
        try:
            moment = (now or utcnow()).replace(microsecond=0)  # how the tables store time
            reservation = _reserve_once(engine, client, account, limits, moment)
        except OperationalError:
            if attempt == _ATTEMPTS - 1 or engine.dialect.name == "sqlite":
                raise
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
            continue
        if reservation.created_bucket:
            prune(engine, limits, now=now)
        return reservation
    raise AssertionError("unreachable")


def _reserve_once(
    engine: Engine, client: str, account: str | None, limits: Limits, now: datetime
) -> Reservation:
    with engine.begin() as conn:
        slot, created = _take(conn, client, limits.client_failures, limits, now, client=True)
        slots = [slot]
        if account is not None:
            limit = (
                limits.device_failures
                if account.startswith(DEVICE_PREFIX)
                else limits.account_failures
            )
            slot, created_account = _take(conn, account, limit, limits, now, client=False)
            slots.append(slot)
            created = created or created_account
        return Reservation(tuple(slots), created)


def _take(
    conn: Connection, bucket: str, limit: int, limits: Limits, now: datetime, *, client: bool
) -> tuple[tuple[str, datetime], bool]:
    """Count one attempt in ``bucket`` (inserting it when new); Throttled when it is full.

    Raising inside the caller's ``engine.begin()`` rolls back what was taken before.
    """
    table = login_throttle
    cutoff = now - timedelta(seconds=limits.window)
    expired = table.c.window_start <= cutoff
    for _ in range(3):
        # One conditional UPDATE: the row lock (or SQLite's write lock) makes check-and-count
        # atomic. SET order matters on MariaDB (left to right): failures reads the old window.
        taken = conn.execute(
            update(table)
            .where(table.c.bucket == bucket, or_(expired, table.c.failures < limit))
            .ordered_values(
                (table.c.failures, case((expired, 1), else_=table.c.failures + 1)),
                (table.c.window_start, case((expired, now), else_=table.c.window_start)),
            )
        )
        if taken.rowcount == 1:
            start = conn.execute(
                select(table.c.window_start).where(table.c.bucket == bucket)
            ).scalar_one()
            return (bucket, start), False
        # A locking read: on MariaDB a plain SELECT would see the transaction's old snapshot.
        row = conn.execute(
            select(table.c.window_start).where(table.c.bucket == bucket).with_for_update()
        ).first()
        if row is not None:
            wait = int((row.window_start + timedelta(seconds=limits.window) - now).total_seconds())
            raise Throttled(max(wait, 1), bucket)
        if (
            client
            and bucket != OVERFLOW_BUCKET
            and _live_clients(conn, cutoff) >= limits.max_clients
        ):
            _warn_full(limits.max_clients)
            slot, _ = _take(conn, OVERFLOW_BUCKET, limit, limits, now, client=True)
            return slot, True
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(bucket=bucket, failures=1, window_start=now))
        except IntegrityError:  # another sign-in created it first: count in its row
            continue
        return (bucket, now), True
    raise OperationalError("sign-in throttle", {}, Exception(f"cannot reserve {bucket}"))


_last_full_warning = 0.0


def _warn_full(max_clients: int) -> None:
    """Say once a minute (per process) that new addresses share the overflow bucket."""
    global _last_full_warning
    now = time.monotonic()
    if now - _last_full_warning >= 60:
        _last_full_warning = now
        log.warning(
            "sign-in throttle: %d client addresses failed within one window; "
            "new addresses share one budget until it ends",
            max_clients,
        )


def _live_clients(conn: Connection, cutoff: datetime) -> int:
    table = login_throttle
    return int(
        conn.execute(
            select(func.count())
            .select_from(table)
            .where(table.c.window_start > cutoff, table.c.bucket.startswith(CLIENT_PREFIX))
        ).scalar_one()
    )


def release(conn: Connection, reservation: Reservation) -> None:
    """Give back a reservation (the password was right), in the caller's transaction.

    Only the attempt this sign-in took is returned, and only while its window lasts.
    """
    table = login_throttle
    for bucket, start in reservation.slots:
        conn.execute(
            update(table)
            .where(table.c.bucket == bucket, table.c.window_start == start, table.c.failures > 0)
            .values(failures=table.c.failures - 1)
        )


def prune(engine: Engine, limits: Limits = DEFAULT_LIMITS, *, now: datetime | None = None) -> int:
    """Delete buckets whose window has ended; how many. Its own short transaction."""
    cutoff = (now or utcnow()) - timedelta(seconds=limits.window)
    try:
        with engine.begin() as conn:
            result = conn.execute(
                delete(login_throttle).where(login_throttle.c.window_start <= cutoff)
            )
            return int(result.rowcount or 0)
    except OperationalError as error:  # a deadlock victim: the next sign-in prunes again
        log.info("sign-in throttle: pruning skipped: %s", error)
        return 0
