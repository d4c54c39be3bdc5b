"""Store-level optimistic transactions, shared by every backend.

A transaction buffers its writes and remembers what it read. Reads see the
transaction's own writes first. At commit the backend checks, atomically
with applying the writes, that every key the transaction read still holds
what it held then (compared by value: a key changed and changed back does
not conflict, which is still serializable because the read set is exactly
the committed state at the commit point); if not, nothing is written and
:class:`~weir.stores.TransactionConflictError` is raised. Writes without
reads never conflict.

This lives above the engines until weir's native transactions are exposed;
the interface will stay when they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import ClosedError
from ._common import KeyEncoding, ValueEncoding, make_error
from .base import Transaction

if TYPE_CHECKING:
    from types import TracebackType

    from .base import StoreBackend

_ABSENT = object()


class StoreTransaction(Transaction):
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
            raise make_error(ClosedError, f"the transaction is already {self.state}")

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

    async def commit(self) -> None:
        """Same as ``backend.commit_transaction(self)``."""
        await self._backend.commit_transaction(self)

    async def rollback(self) -> None:
        """Same as ``backend.rollback_transaction(self)``."""
        await self._backend.rollback_transaction(self)

    async def __aenter__(self) -> StoreTransaction:
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

    def __repr__(self) -> str:
        return f"<StoreTransaction {self.state} reads={len(self.reads)} writes={len(self.writes)}>"
