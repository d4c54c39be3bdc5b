"""Bounded waits on asyncio tasks, and cancellation that cannot be lost.

A cancellation is one exception thrown into a task at its next ``await``.
A library may swallow it: redis-py's asyncio client sends every command
through ``asyncio.wait_for`` (it has a socket timeout), and on Python 3.11
``wait_for`` returns the command's reply instead of raising when the
cancellation arrives just as the reply does. A task that loops over Redis
commands then never sees its cancellation, and whoever awaits it waits
forever (tests/python/test_stream_cancel.py shows it with the real client
and server).

So every task weir.stream and weir.cluster start is ended the same way:
its loop also checks a flag (set before the cancellation), and
:func:`cancel_and_wait` cancels again until the task has ended or the
bound has passed, then raises :class:`TaskTimeoutError` naming the task and
the line it is waiting at, instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

__all__ = ["TaskTimeoutError", "cancel_and_wait", "finish_despite_cancel", "wait_bounded", "where"]

T = TypeVar("T")

#: How often a cancellation is delivered again to a task that has not ended.
RECANCEL_SECONDS = 0.1


class TaskTimeoutError(TimeoutError):
    """A task did not end (or finish) within its bound; the message says
    which task, what was waiting for it and where it is stuck."""


def where(task: asyncio.Task[Any]) -> str:
    """The innermost frame ``task`` is suspended at, as ``file:line in
    function`` (or its state when it is not suspended)."""
    if task.done():
        return "done"
    frames = task.get_stack()
    if not frames:
        return "not started"
    f = frames[-1]
    return f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"


def _describe(tasks: Iterable[asyncio.Task[Any]]) -> str:
    return "; ".join(f"task {t.get_name()!r} at {where(t)}" for t in tasks if not t.done())


async def cancel_and_wait(
    tasks: asyncio.Task[Any] | Iterable[asyncio.Task[Any]], *, timeout: float, what: str
) -> None:
    """Cancel ``tasks`` and wait at most ``timeout`` seconds for all of
    them to end, cancelling every one still running again every
    :data:`RECANCEL_SECONDS` (so a cancellation a library swallowed is
    delivered again). Their results and exceptions are retrieved (no
    "exception was never retrieved" later). Raises :class:`TaskTimeoutError`
    saying ``what`` was waited for and where each task is stuck."""
    pending = {tasks} if isinstance(tasks, asyncio.Task) else set(tasks)
    deadline = time.monotonic() + timeout
    while True:
        pending = {t for t in pending if not t.done()}
        if not pending:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskTimeoutError(
                f"{what}: still running {timeout:g} s after being cancelled: {_describe(pending)}"
            )
        for t in pending:
            t.cancel()
        await asyncio.wait(pending, timeout=min(RECANCEL_SECONDS, left))
    for t in [tasks] if isinstance(tasks, asyncio.Task) else tasks:
        if not t.cancelled():
            t.exception()  # retrieved: it is the caller's to look at, never logged as lost


async def wait_bounded(task: asyncio.Task[T], *, timeout: float, what: str) -> T:
    """The result of ``task``, waiting at most ``timeout`` seconds (the
    task is not cancelled when the bound passes: :class:`TaskTimeoutError`
    says what was waited for and where the task is)."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise TaskTimeoutError(f"{what}: not done after {timeout:g} s: {_describe([task])}")
    return task.result()


async def finish_despite_cancel(coro: Coroutine[Any, Any, T], *, timeout: float, what: str) -> T:
    """Run ``coro`` (clean-up that must not be cut short: stopping a store,
    ending sub-tasks) to its end even if the caller is cancelled meanwhile,
    for at most ``timeout`` seconds; a cancellation that came in the
    meantime is raised after it. ``coro`` itself must be bounded; past
    ``timeout`` it is cancelled and :class:`TaskTimeoutError` raised."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    deadline = time.monotonic() + timeout
    while not task.done():
        left = deadline - time.monotonic()
        if left <= 0:
            with contextlib.suppress(TaskTimeoutError):
                await cancel_and_wait(task, timeout=1.0, what=what)
            raise TaskTimeoutError(f"{what}: clean-up took longer than {timeout:g} s")
        try:
            await asyncio.wait({task}, timeout=left)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled():
            task.exception()  # retrieved; the cancellation goes first
        raise asyncio.CancelledError
    return task.result()
