"""Sabot's Redis backend, over weir's (redis-py's asyncio client).

Sabot's options are taken as Sabot code passes them: ``host``, ``port``,
``db``, ``username`` and ``password`` (or weir's ``url``, or ``config.path``
as ``host:port/db``), ``namespace`` (default ``"sabot"``, as in Sabot) and
``serializer`` (``"json"``, Sabot's default, ``"pickle"`` or ``"msgpack"``;
or weir's ``value_codec``). weir's other Redis options (``client``,
``max_connections``, ``socket_timeout``) pass through. Values live under the
namespace with an index that makes range and prefix scans real range reads
(see :mod:`weir.stores.redis`), so the layout differs from Sabot's
``namespace:key`` strings: a store written by Sabot is not read in place.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ... import InvalidArgumentError
from .base import SabotStoreBackend

__all__ = ["RedisBackend"]

_SERIALIZERS = {"json": "json", "pickle": "pickle", "msgpack": "msgpack"}
_ADDRESS = ("host", "port", "db", "username", "password")


class RedisBackend(SabotStoreBackend):
    """A namespace on a Redis server, with Sabot's option names."""

    backend_type = "redis"
    engine_type = "redis"
    default_value_codec = "json"

    def _engine_options(self, options: dict[str, Any]) -> dict[str, Any]:
        address = {k: options.pop(k) for k in _ADDRESS if k in options}
        serializer = options.pop("serializer", None)
        if address:
            if "url" in options or self.config.path is not None:
                raise InvalidArgumentError(
                    "give the Redis server either as host/port/db options or as url/path, not both"
                )
            options["url"] = _url(address)
        if serializer is not None:
            if "value_codec" in options:
                raise InvalidArgumentError(
                    "give either serializer (Sabot's name) or value_codec, not both"
                )
            codec = _SERIALIZERS.get(serializer) if isinstance(serializer, str) else None
            if codec is None:
                raise InvalidArgumentError(
                    f"serializer must be one of {', '.join(map(repr, _SERIALIZERS))}, "
                    f"not {serializer!r}"
                )
            options["value_codec"] = codec
        options.setdefault("namespace", "sabot")
        return options

    async def get_stats(self) -> dict[str, Any]:
        """weir's Redis statistics plus Sabot's keys: ``size``, ``namespace``,
        ``serializer``, ``host``, ``port`` and ``memory_usage_bytes`` (0: the
        data is held by the server; its memory is ``engine["used_memory"]``)."""
        stats = await super().get_stats()
        options = self.config.options or {}
        stats["serializer"] = stats.get("value_codec")
        stats["host"] = options.get("host", "localhost" if "url" not in options else None)
        stats["port"] = options.get("port", 6379 if "url" not in options else None)
        return stats


def _url(address: dict[str, Any]) -> str:
    host = address.get("host", "localhost")
    port = address.get("port", 6379)
    db = address.get("db", 0)
    if not isinstance(host, str) or not host:
        raise InvalidArgumentError(f"host must be a non-empty str, not {host!r}")
    for name, value in (("port", port), ("db", db)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"{name} must be a non-negative int, not {value!r}")
    if not 0 < port < 65536:
        raise InvalidArgumentError(f"port must be between 1 and 65535, not {port}")
    auth = ""
    user, password = address.get("username"), address.get("password")
    if password is not None:
        if not isinstance(password, str) or (user is not None and not isinstance(user, str)):
            raise InvalidArgumentError("username and password must be str")
        auth = f"{quote(user or '', safe='')}:{quote(password, safe='')}@"
    elif user is not None:
        raise InvalidArgumentError("a username needs a password")
    return f"redis://{auth}{host}:{port}/{db}"
