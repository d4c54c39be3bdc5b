"""weir.check and weir.salvage: a store's files and write history checked
without changing anything, and what is intact copied out of a damaged one.

Both run the engine's own checker (``weir_check`` / ``weir_salvage`` in
weir.h) without the GIL and return a report of findings, one per file or
problem, each with a level:

- ``ok``: a file checked and found intact;
- ``note``: worth knowing, nothing lost (a leftover file);
- ``warn``: only what the sync mode allows was dropped (a torn tail at the
  crash point, a hole a power cut left in writes never fsync'd);
- ``damage``: acknowledged data is lost or would be changed;
- ``error``: a file could not be read at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import _weir
from ._weir import CorruptionError

__all__ = ["CheckReport", "Finding", "SalvageReport", "check", "salvage"]

_LEVELS = ("ok", "note", "warn", "damage", "error")

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]


@dataclass(frozen=True)
class Finding:
    """One line of a report: ``level``, the ``file`` it is about (a name in
    the store's directory, or ``"database"`` for the history across files)
    and a ``message`` naming offsets, keys and sequences."""

    level: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper()} {self.file}: {self.message}"


def _findings(raw: list[tuple[int, str, str]]) -> tuple[Finding, ...]:
    return tuple(Finding(_LEVELS[min(level, 4)], file, message) for level, file, message in raw)


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check` found. ``ok`` is true when nothing acknowledged is
    lost or changed (warnings allowed)."""

    path: str
    findings: tuple[Finding, ...]
    first_damage: str

    @property
    def ok(self) -> bool:
        """True when no finding is ``damage`` or ``error``."""
        return not any(f.level in ("damage", "error") for f in self.findings)

    @property
    def damage(self) -> list[Finding]:
        """The findings that lose or change acknowledged data."""
        return [f for f in self.findings if f.level == "damage"]

    @property
    def warnings(self) -> list[Finding]:
        """Torn tails at the crash point and power-cut holes in unsynced writes."""
        return [f for f in self.findings if f.level == "warn"]

    def raise_for_damage(self) -> None:
        """Raise :class:`weir.CorruptionError` naming the first damage, if any."""
        if not self.ok:
            raise CorruptionError(self.first_damage or str(self.damage[0]))


@dataclass(frozen=True)
class SalvageReport:
    """What :func:`salvage` copied and what it could not. ``complete`` is
    true when nothing was lost; ``losses`` lists what was."""

    source: str
    target: str
    findings: tuple[Finding, ...]
    summary: str

    @property
    def complete(self) -> bool:
        """True when every record of the source was recovered."""
        return not self.losses

    @property
    def losses(self) -> list[Finding]:
        """Files, offsets, key and sequence ranges that could not be recovered."""
        return [f for f in self.findings if f.level in ("damage", "error")]


def check(path: PathLike) -> CheckReport:
    """Check every file of the store at ``path`` and its write history.

    Nothing is created, written, renamed or deleted. Every manifest record,
    table block and log record is checked against its checksum; tables
    against what the manifest recorded; the sequence history across manifest
    and logs as a read-only recovery sees it (skipped, with a note, while
    another process has the store open for writing).

    Raises :class:`weir.InvalidArgumentError` when ``path`` is not a weir
    store and :class:`weir.StorageIOError` when it cannot be read; damage is
    reported, not raised (see :meth:`CheckReport.raise_for_damage`).
    """
    first_damage, raw = _weir._check(path)
    return CheckReport(os.fsdecode(os.fspath(path)), _findings(raw), first_damage)


def salvage(source: PathLike, target: PathLike) -> SalvageReport:
    """Copy every record that can be proved intact from the damaged store at
    ``source`` into a new store at ``target`` (which must not exist, or be
    empty).

    The source is only read (and read-locked, so it must not be open for
    writing). Live tables are read block by block and logs record by record,
    each checked by its checksum; entries keep their sequence numbers so the
    newest intact version of each key wins; tables the manifest no longer
    lists are not used, since they could bring deleted keys back. The report
    names everything that could not be recovered.

    Raises when no copy could be made (:class:`weir.InvalidArgumentError`
    for a missing source or a non-empty target, :class:`weir.BusyError` when
    the source is open for writing).
    """
    summary, raw = _weir._salvage(source, target)
    return SalvageReport(
        os.fsdecode(os.fspath(source)), os.fsdecode(os.fspath(target)), _findings(raw), summary
    )
