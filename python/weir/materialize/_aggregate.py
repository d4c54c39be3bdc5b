"""AggregateView: count/sum/min/max/mean per group, maintained
incrementally in a weir DB with merge operators, so an update is a
write-only batch of merges (no read-modify-write) and survives restarts.
See docs/MATERIALIZE.md."""

from __future__ import annotations

import json
import struct
from collections.abc import (
    AsyncIterable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, TypeAlias

try:
    import pyarrow as pa
except ImportError as e:  # pragma: no cover - pyarrow is in the test extras
    raise ImportError(
        "weir.materialize needs pyarrow: pip install 'weirdb[arrow]' (or pyarrow)"
    ) from e


from .. import WriteBatch
from ..codecs import KeyCodec
from ._common import (
    _FORMAT,
    _ROOT,
    SchemaError,
    Store,
    _as_table,
    _check_name,
    _is_int_type,
    _open_store,
)

__all__ = ["AggSpec", "AggregateView"]


_AGGS = ("count", "sum", "min", "max", "mean")
AggSpec: TypeAlias = str | tuple[str, str]


class AggregateView:
    """Per-group aggregates kept up to date incrementally and persisted in
    weir.

    ``aggregations`` maps each output name to ``"count"`` (rows in the
    group), to ``"sum"``/``"min"``/``"max"``/``"mean"`` of the column with
    the same name, or to ``(aggregate, column)``. Sums, counts, minima and
    maxima are stored with weir's merge operators (int64 or float64 by the
    column's type), so updating never reads; a mean is a stored sum over a
    stored count of non-null values. Nulls are skipped, as in SQL.
    """

    def __init__(
        self,
        name: str,
        group_by: Sequence[str] | str,
        aggregations: Mapping[str, AggSpec],
        *,
        store: Store,
    ) -> None:
        self._name = name
        self._prefix = _ROOT + b"view/" + _check_name("AggregateView", name) + b"/"
        self._group_by = [group_by] if isinstance(group_by, str) else list(group_by)
        if not self._group_by:
            raise ValueError("group_by needs at least one column")
        self._aggs: dict[str, tuple[str, str | None]] = {}
        for out, spec in aggregations.items():
            if isinstance(spec, str):
                agg, col = spec, (None if spec == "count" else out)
            elif isinstance(spec, tuple) and len(spec) == 2:
                agg, col = spec
            else:
                raise ValueError(
                    f"aggregation {out!r}: expected 'agg' or ('agg', column), not {spec!r}"
                )
            if agg not in _AGGS:
                raise ValueError(
                    f"aggregation {out!r}: unknown aggregate {agg!r} (one of {', '.join(_AGGS)})"
                )
            if out in self._group_by:
                raise ValueError(f"aggregation {out!r} has the name of a group_by column")
            self._aggs[out] = (agg, col)
        if not self._aggs:
            raise ValueError("aggregations must name at least one aggregate")
        if store is None:
            raise TypeError("AggregateView needs a store (a weir.DB or a path)")
        self._db, self._owns_db = _open_store(store)
        assert self._db is not None
        self._codec = KeyCodec()
        self._group_types: dict[str, str] | None = None
        self._value_kinds: dict[str, str] = {}
        raw = self._db.get(self._prefix + b"meta")
        if raw is not None:
            meta = json.loads(raw)
            stored_aggs = {k: (v[0], v[1]) for k, v in meta["aggregations"].items()}
            if meta["group_by"] != self._group_by or stored_aggs != self._aggs:
                self.close()
                wanted = {k: list(v) for k, v in self._aggs.items()}
                raise SchemaError(
                    f"view {name!r} was stored with group_by={meta['group_by']} and "
                    f"aggregations={meta['aggregations']}; it cannot be reopened as "
                    f"group_by={self._group_by}, aggregations={wanted}"
                )
            self._group_types = meta["group_types"]
            self._value_kinds = meta["value_kinds"]

    @property
    def name(self) -> str:
        return self._name

    @property
    def group_by(self) -> list[str]:
        return list(self._group_by)

    def _slot_key(self, group: tuple[Any, ...], slot: str) -> bytes:
        return self._prefix + b"g/" + self._codec.encode((group, slot))

    def _save_meta(self, wb: WriteBatch) -> None:
        meta = {
            "format": _FORMAT,
            "group_by": self._group_by,
            "aggregations": {k: list(v) for k, v in self._aggs.items()},
            "group_types": self._group_types,
            "value_kinds": self._value_kinds,
        }
        wb.put(self._prefix + b"meta", json.dumps(meta).encode())

    def _check_batch(self, table: pa.Table) -> tuple[dict[str, str], dict[str, str]]:
        names = table.schema.names
        group_types: dict[str, str] = {}
        for g in self._group_by:
            if g not in names:
                raise SchemaError(
                    f"view {self._name!r}: group_by column {g!r} is missing "
                    f"(columns: {', '.join(names)})",
                    column=g,
                )
            t = table.schema.field(g).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if _is_int_type(t):
                kind = "int64"
            elif pa.types.is_string(t) or pa.types.is_large_string(t):
                kind = "string"
            elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
                kind = "binary"
            else:
                raise SchemaError(
                    f"view {self._name!r}: group_by column {g!r} is {t}; groups must be "
                    "integers or strings",
                    column=g,
                )
            if self._group_types is not None and self._group_types[g] != kind:
                raise SchemaError(
                    f"view {self._name!r}: group_by column {g!r} is {t}, stored as "
                    f"{self._group_types[g]}",
                    column=g,
                )
            group_types[g] = kind
        kinds: dict[str, str] = {}
        for out, (agg, col) in self._aggs.items():
            if col is None:
                continue
            if col not in names:
                raise SchemaError(
                    f"view {self._name!r}: column {col!r} (for {out!r}) is missing "
                    f"(columns: {', '.join(names)})",
                    column=col,
                )
            t = table.schema.field(col).type
            if agg == "count" or pa.types.is_null(t):
                continue  # all-null values add nothing but counts
            if _is_int_type(t):
                kind = "int"
            elif pa.types.is_floating(t):
                kind = "float"
            else:
                raise SchemaError(
                    f"view {self._name!r}: column {col!r} is {t}; {agg} needs numbers",
                    column=col,
                )
            stored = self._value_kinds.get(out)
            if stored is not None and stored != kind:
                raise SchemaError(
                    f"view {self._name!r}: column {col!r} is {t} but {out!r} was stored "
                    f"from {stored} values",
                    column=col,
                )
            kinds[out] = kind
        return group_types, kinds

    def update(self, data: Any) -> int:
        """Folds rows into the view: a pyarrow Table or RecordBatch, one
        record or a list of records. The batch is pre-aggregated per group
        in Arrow, then written as one atomic batch of merges. Returns the
        number of rows folded in."""
        table = _as_table(data, "update")
        if table.num_rows == 0:
            return 0
        group_types, kinds = self._check_batch(table)
        columns = {c for _, c in self._aggs.values() if c is not None}
        for c in columns:
            if pa.types.is_null(table.schema.field(c).type):
                table = table.set_column(
                    table.schema.get_field_index(c), c, table.column(c).cast(pa.float64())
                )
        for g in self._group_by:
            t = table.schema.field(g).type
            if pa.types.is_dictionary(t):
                table = table.set_column(
                    table.schema.get_field_index(g), g, table.column(g).cast(t.value_type)
                )
        specs: list[tuple[Any, str]] = [([], "count_all")]
        for c in sorted(columns):
            specs.append((c, "count"))
            for agg in ("sum", "min", "max"):
                specs.append((c, agg))
        grouped = table.group_by(self._group_by, use_threads=False).aggregate(specs)
        wb = self._db.write_batch() if self._db is not None else None
        assert wb is not None
        if self._group_types is None or any(k not in self._value_kinds for k in kinds):
            self._group_types = group_types
            self._value_kinds.update(kinds)
            self._save_meta(wb)
        for row in grouped.to_pylist():
            group = tuple(row[g] for g in self._group_by)
            wb.merge(self._slot_key(group, "#rows"), "int64_add", int(row["count_all"]))
            for out, (agg, col) in self._aggs.items():
                if col is None:
                    continue
                nonnull = int(row[f"{col}_count"])
                if agg in ("count", "mean"):
                    wb.merge(self._slot_key(group, out + "#n"), "int64_add", nonnull)
                if agg == "count" or nonnull == 0:
                    continue
                kind = kinds[out]
                if agg in ("sum", "mean"):
                    v = row[f"{col}_sum"]
                    if kind == "int":
                        wb.merge(self._slot_key(group, out), "int64_add", int(v))
                    else:
                        wb.merge(self._slot_key(group, out), "float64_add", float(v))
                else:
                    v = row[f"{col}_{agg}"]
                    key = self._slot_key(group, out)
                    if kind == "int":
                        wb.merge(key, "int64_max" if agg == "max" else "int64_min", int(v))
                    else:
                        wb.merge(key, "float64_max" if agg == "max" else "float64_min", float(v))
        wb.commit()
        return int(table.num_rows)

    def consume(self, stream: Iterable[Any]) -> int:
        """Folds every item (batch, table, record or list of records) of a
        stream into the view. Returns the rows folded in."""
        return sum(self.update(item) for item in stream)

    async def aconsume(self, stream: AsyncIterable[Any]) -> int:
        """The async form of consume."""
        total = 0
        async for item in stream:
            total += self.update(item)
        return total

    def _decode(self, out: str, slot_values: Mapping[str, bytes]) -> Any:
        agg, col = self._aggs[out]
        if agg == "count":
            raw = slot_values.get("#rows" if col is None else out + "#n")
            return 0 if raw is None else struct.unpack("<q", raw)[0]
        raw = slot_values.get(out)
        if raw is None:
            return None
        fmt = "<q" if self._value_kinds.get(out) == "int" else "<d"
        value = struct.unpack(fmt, raw)[0]
        if agg == "mean":
            n = struct.unpack("<q", slot_values[out + "#n"])[0]
            return value / n if n else None
        return value

    def _group_tuple(self, group: Any) -> tuple[Any, ...]:
        if not isinstance(group, tuple):
            group = (group,)
        if len(group) != len(self._group_by):
            raise KeyError(group)
        return tuple(group)

    def _read_group(self, group: tuple[Any, ...]) -> dict[str, bytes]:
        prefix = self._prefix + b"g/" + self._codec.prefix((group,))
        slots: dict[str, bytes] = {}
        for k, v in self._db.items(prefix=prefix):  # type: ignore[union-attr]
            decoded = self._codec.decode(k[len(self._prefix) + 2 :])
            assert isinstance(decoded, tuple)
            slots[str(decoded[1])] = v
        return slots

    def __getitem__(self, group: Any) -> dict[str, Any]:
        """The aggregates of one group (a value, or a tuple for several
        group_by columns), e.g. ``{"volume": 1500000, "trades": 4500}``."""
        try:
            slots = self._read_group(self._group_tuple(group))
        except TypeError:
            raise KeyError(group) from None
        if "#rows" not in slots:
            raise KeyError(group)
        return {out: self._decode(out, slots) for out in self._aggs}

    def get(self, group: Any, default: Any = None) -> Any:
        try:
            return self[group]
        except KeyError:
            return default

    def __contains__(self, group: object) -> bool:
        return self.get(group) is not None

    def _all_groups(self) -> list[tuple[tuple[Any, ...], dict[str, bytes]]]:
        out: list[tuple[tuple[Any, ...], dict[str, bytes]]] = []
        current: tuple[Any, ...] | None = None
        slots: dict[str, bytes] = {}
        assert self._db is not None
        for k, v in self._db.items(prefix=self._prefix + b"g/"):
            decoded = self._codec.decode(k[len(self._prefix) + 2 :])
            assert isinstance(decoded, tuple)
            group, slot = tuple(decoded[0]), decoded[1]  # type: ignore[arg-type]
            if group != current:
                if current is not None:
                    out.append((current, slots))
                current, slots = group, {}
            slots[str(slot)] = v
        if current is not None:
            out.append((current, slots))
        return out

    def __len__(self) -> int:
        return len(self._all_groups())

    def __iter__(self) -> Iterator[Any]:
        for group, _ in self._all_groups():
            yield group[0] if len(group) == 1 else group

    def to_arrow(self) -> pa.Table:
        """One row per group: the group_by columns, then each aggregate
        (int64 for counts and integer sums/minima/maxima, float64 otherwise),
        ordered by group."""
        groups = self._all_groups()
        arrays: list[pa.Array] = []
        fields: list[pa.Field] = []
        type_of = {"int64": pa.int64(), "string": pa.string(), "binary": pa.binary()}
        for i, g in enumerate(self._group_by):
            t = type_of[(self._group_types or {}).get(g, "string")]
            arrays.append(pa.array([grp[i] for grp, _ in groups], t))
            fields.append(pa.field(g, t))
        for out, (agg, _) in self._aggs.items():
            if agg == "count" or (agg != "mean" and self._value_kinds.get(out) == "int"):
                t = pa.int64()
            else:
                t = pa.float64()
            arrays.append(pa.array([self._decode(out, s) for _, s in groups], t))
            fields.append(pa.field(out, t))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def to_pandas(self) -> Any:
        """to_arrow() as a pandas DataFrame (needs pandas installed)."""
        try:
            import pandas  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as e:
            raise ImportError("AggregateView.to_pandas() needs pandas: pip install pandas") from e
        return self.to_arrow().to_pandas()

    def clear(self) -> None:
        """Deletes every group and the stored definition."""
        assert self._db is not None
        self._db.delete_prefix(self._prefix)
        self._group_types = None
        self._value_kinds = {}

    def close(self) -> None:
        """Closes the DB if this view opened it from a path."""
        if self._owns_db and self._db is not None:
            self._db.close()
        self._owns_db = False

    def __enter__(self) -> AggregateView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AggregateView({self._name!r}, group_by={self._group_by})"
