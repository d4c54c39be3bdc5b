"""Optimistic transactions of the store backends.

:class:`StoreTransaction` is the store-level implementation the memory,
RocksDB and Redis backends use (rocksdict has no transaction API). It
buffers its writes and remembers what it read; reads see the transaction's
own writes first. At commit the backend checks, atomically with applying
the writes, that every key the transaction read still holds what it held
then (compared by value: a key changed and changed back does not conflict,
which is still serializable because the read set is exactly the committed
state at the commit point); if not, nothing is written and
:class:`~weir.stores.TransactionConflictError` is raised. Writes without
reads never conflict.

:class:`EngineTransaction` is the weir backend's: a thin shell over an
engine transaction (``weir.DB.transaction()``), which reads one snapshot
taken at begin, records every key it reads (``get_for_update``) or writes,
and at commit fails if another commit changed any of them after the
snapshot (so, unlike the store-level kind, two transactions writing the same
key blindly conflict too: the first to commit wins). The commit is one
engine write, crash-safe like a batch.

Using a finished transaction (committed, rolled back, or whose commit
failed) raises :class:`weir.InvalidArgumentError` on every backend, as a
finished ``weir.Transaction`` does; rolling one back again does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self

from .. import ClosedError, ConflictError, InvalidArgumentError
from ._common import KeyEncoding, ValueEncoding, make_error
from .base import Transaction, TransactionConflictError

if TYPE_CHECKING:
    from types import TracebackType

    from .. import Transaction as WeirTransaction
    from .base import StoreBackend

_ABSENT = object()


def finished_error(state: str) -> Exception:
    """What using a finished transaction raises, on every backend."""
    return make_error(
        InvalidArgumentError,
        f"the transaction is already {state}; begin a new one",
    )


class _BackendTransaction(Transaction):
    """What both transaction kinds share: commit and rollback go through the
    backend that made them, and ``async with`` commits on success and rolls
    back on an exception."""

    _backend: StoreBackend
    state: str

    async def commit(self) -> None:
        """Same as ``backend.commit_transaction(self)``."""
        await self._backend.commit_transaction(self)

    async def rollback(self) -> None:
        """Same as ``backend.rollback_transaction(self)``."""
        await self._backend.rollback_transaction(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.state == "active":
            await self.commit()
        elif self.state == "active":
            await self.rollback()


class StoreTransaction(_BackendTransaction):
    """A buffered, optimistically checked transaction on one backend.

    Use it as ``async with backend.transaction() as txn:`` (commits on a
    clean exit, rolls back on an exception) or through
    ``begin_transaction`` / ``commit_transaction`` / ``rollback_transaction``.
    """

    __slots__ = ("_backend", "_keys", "_read", "_values", "reads", "state", "writes")

    def __init__(
        self,
        backend: StoreBackend,
        keys: KeyEncoding,
        values: ValueEncoding,
        read: Callable[[bytes], Awaitable[bytes | None]],
    ) -> None:
        self._backend = backend
        self._keys = keys
        self._values = values
        self._read = read
        #: encoded key -> the codec payload it held when first read (None: absent)
        self.reads: dict[bytes, bytes | None] = {}
        #: encoded key -> codec payload to write, or None to delete
        self.writes: dict[bytes, bytes | None] = {}
        self.state = "active"

    @property
    def backend(self) -> StoreBackend:
        return self._backend

    @property
    def active(self) -> bool:
        return self.state == "active"

    def _check_active(self) -> None:
        if self.state != "active":
            raise finished_error(self.state)

    async def _payload(self, ek: bytes) -> bytes | None:
        if ek in self.writes:
            return self.writes[ek]
        seen = self.reads.get(ek, _ABSENT)
        if seen is not _ABSENT:
            return seen  # type: ignore[return-value]
        raw = await self._read(ek)
        payload = None if raw is None else self._values.live_payload(raw)
        self.reads[ek] = payload
        return payload

    async def get(self, key: Any) -> Any:
        """The value of ``key`` as this transaction sees it."""
        self._check_active()
        payload = await self._payload(self._keys.encode(key))
        return None if payload is None else self._values.decode_payload(key, payload)

    async def exists(self, key: Any) -> bool:
        """True if ``key`` is present as this transaction sees it."""
        self._check_active()
        return await self._payload(self._keys.encode(key)) is not None

    async def set(self, key: Any, value: Any) -> None:
        """Buffer ``key = value``; the value is encoded now, so a bad one fails here."""
        self._check_active()
        self.writes[self._keys.encode(key)] = self._values.encode_plain(key, value)

    async def delete(self, key: Any) -> bool:
        """Buffer a delete of ``key``; True if it was present (a read, so it
        conflicts with a concurrent change of ``key``)."""
        self._check_active()
        ek = self._keys.encode(key)
        present = await self._payload(ek) is not None
        self.writes[ek] = None
        return present

    def __repr__(self) -> str:
        return f"<StoreTransaction {self.state} reads={len(self.reads)} writes={len(self.writes)}>"


class EngineTransaction(_BackendTransaction):
    """A weir engine transaction behind the store's key and value codecs.

    Reads come from the snapshot taken at begin, overlaid with this
    transaction's own writes, and are all checked at commit (they use the
    engine's ``get_for_update``). Use it as ``async with
    backend.transaction() as txn:`` or through ``begin_transaction`` /
    ``commit_transaction`` / ``rollback_transaction``. The engine calls are
    microseconds and release the GIL, so they run inline on the event loop.
    """

    __slots__ = ("_backend", "_begin", "_keys", "_ready", "_values", "engine_txn", "state")

    def __init__(
        self,
        backend: StoreBackend,
        keys: KeyEncoding,
        values: ValueEncoding,
        begin: Callable[[], WeirTransaction],
        ready: Callable[[], Awaitable[None]],
        *,
        eager: bool,
    ) -> None:
        self._backend = backend
        self._keys = keys
        self._values = values
        self._begin = begin
        self._ready = ready
        #: the ``weir.Transaction`` this wraps; begun at once when the store
        #: is open, else (a stop or restore in progress) at the first use,
        #: once the store is ready again
        self.engine_txn: WeirTransaction | None = begin() if eager else None
        #: "active", "committed", "rolled back" or "failed"
        self.state = "active"

    async def _engine(self) -> WeirTransaction:
        await self._ready()
        txn = self.engine_txn
        if txn is None:
            txn = self.engine_txn = self._begin()
        return txn

    @property
    def backend(self) -> StoreBackend:
        return self._backend

    @property
    def active(self) -> bool:
        return self.state == "active"

    def _check_active(self) -> None:
        if self.state != "active":
            raise finished_error(self.state)

    async def _read(self, ek: bytes) -> bytes | None:
        self._check_active()
        raw: bytes | None = (await self._engine()).get_for_update(ek)
        return raw

    async def get(self, key: Any) -> Any:
        """The value of ``key`` as this transaction sees it (checked at commit)."""
        raw = await self._read(self._keys.encode(key))
        return None if raw is None else self._values.decode_payload(key, raw)

    async def exists(self, key: Any) -> bool:
        """True if ``key`` is present as this transaction sees it."""
        return await self._read(self._keys.encode(key)) is not None

    async def set(self, key: Any, value: Any) -> None:
        """Buffer ``key = value``; the value is encoded now, so a bad one fails here."""
        self._check_active()
        ek = self._keys.encode(key)
        payload = self._values.encode_plain(key, value)
        (await self._engine()).put(ek, payload)

    async def delete(self, key: Any) -> bool:
        """Buffer a delete of ``key``; True if it was present (a checked read)."""
        ek = self._keys.encode(key)
        try:
            present = await self._read(ek) is not None
        except InvalidArgumentError:
            if self.state != "active":
                raise
            # A value the engine cannot read back (a merge onto a value of
            # another type): it is there, and deleting it is the cure.
            present = True
        (await self._engine()).delete(ek)
        return present

    def commit_now(self) -> None:
        """Commit the engine transaction (the backend has checked it is open)."""
        self._check_active()
        txn = self.engine_txn
        if txn is None:  # never used: nothing to apply
            self.state = "committed"
            return
        try:
            txn.commit()
        except ConflictError as e:
            self.state = "rolled back"
            raise make_error(
                TransactionConflictError, f"{e}; nothing was written", "WEIR_CONFLICT"
            ) from e
        except BaseException:
            self.state = "failed"
            raise
        self.state = "committed"

    def rollback_now(self) -> None:
        """Roll back if still active; a finished transaction is left as is."""
        if self.state == "active":
            self.state = "rolled back"
            if self.engine_txn is None:
                return
            try:
                self.engine_txn.rollback()
            except ClosedError:
                pass  # the store was stopped or restored: the engine dropped it already

    def __repr__(self) -> str:
        return f"<EngineTransaction {self.state}>"
