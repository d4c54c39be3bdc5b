"""weir.retry: run optimistic transactions again when they lose a conflict.

A transaction's commit raises ``weir.ConflictError`` (and writes nothing)
when another commit changed a key it wrote or read for update. The cure is
to run the whole transaction again from the start, after a short randomised
pause so that the contenders do not collide again in lockstep.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from ._weir import DB, ConflictError, Transaction

if TYPE_CHECKING:
    from ._weir import _SyncMode

__all__ = ["retry"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _check(attempts: int, backoff: float, max_backoff: float) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1, not {attempts!r}")
    if not backoff >= 0 or not max_backoff >= 0:  # also refuses NaN
        raise ValueError(f"backoff and max_backoff must be >= 0, not {backoff!r}, {max_backoff!r}")


def _run(call: Callable[[], _T], attempts: int, backoff: float, max_backoff: float) -> _T:
    for attempt in range(attempts):
        try:
            return call()
        except ConflictError:
            if attempt == attempts - 1:
                raise
        # Exponential, capped, with "equal jitter": half fixed so there is
        # always some pause, half random so retries spread out.
        delay = min(max_backoff, backoff * (2.0**attempt))
        if delay > 0:
            time.sleep(delay / 2 + random.random() * delay / 2)
    raise AssertionError("unreachable")  # pragma: no cover


def _in_transaction(
    db: DB,
    fn: Callable[..., _T],
    sync: _SyncMode | None,
    track_all_reads: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _T:
    with db.transaction(sync=sync, track_all_reads=track_all_reads) as txn:
        return fn(txn, *args, **kwargs)


@overload
def retry(
    fn: Callable[[], _T],
    /,
    *,
    db: None = None,
    attempts: int = 10,
    backoff: float = 0.001,
    max_backoff: float = 0.05,
) -> _T: ...
@overload
def retry(
    fn: Callable[[Transaction], _T],
    /,
    *,
    db: DB,
    sync: _SyncMode | None = None,
    track_all_reads: bool = False,
    attempts: int = 10,
    backoff: float = 0.001,
    max_backoff: float = 0.05,
) -> _T: ...
@overload
def retry(
    *,
    db: None = None,
    attempts: int = 10,
    backoff: float = 0.001,
    max_backoff: float = 0.05,
) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]: ...
@overload
def retry(
    *,
    db: DB,
    sync: _SyncMode | None = None,
    track_all_reads: bool = False,
    attempts: int = 10,
    backoff: float = 0.001,
    max_backoff: float = 0.05,
) -> Callable[[Callable[Concatenate[Transaction, _P], _T]], Callable[_P, _T]]: ...
def retry(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    db: DB | None = None,
    sync: _SyncMode | None = None,
    track_all_reads: bool = False,
    attempts: int = 10,
    backoff: float = 0.001,
    max_backoff: float = 0.05,
) -> Any:
    """Call ``fn`` until it does not raise ``weir.ConflictError``.

    ``retry(fn)`` calls ``fn()`` now, up to ``attempts`` times, and returns
    its result; ``fn`` opens and commits its own transaction. With
    ``db=``, each attempt runs in a fresh ``db.transaction(sync=...,
    track_all_reads=...)``: ``retry(fn, db=db)`` calls ``fn(txn)`` and
    commits when it returns. Between attempts it sleeps about ``backoff``
    seconds, doubling each time up to ``max_backoff``, half of it random.
    The last attempt's ConflictError propagates; any other exception
    propagates at once.

    Without ``fn`` it is a decorator (mind the parentheses)::

        @weir.retry(attempts=20)
        def move(): ...

        @weir.retry(db=db)
        def transfer(txn, src, dst, amount): ...

        transfer(b"a", b"b", 10)   # txn is supplied by the decorator
    """
    _check(attempts, backoff, max_backoff)
    if db is not None and not isinstance(db, DB):
        raise TypeError(f"db must be a weir.DB, not {type(db).__name__}")

    def bind(f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if db is None:
            return _run(lambda: f(*args, **kwargs), attempts, backoff, max_backoff)
        return _run(
            lambda: _in_transaction(db, f, sync, track_all_reads, args, kwargs),
            attempts,
            backoff,
            max_backoff,
        )

    if fn is not None:
        return bind(fn, (), {})

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return bind(f, args, kwargs)

        return wrapper

    return decorate
