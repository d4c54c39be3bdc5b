"""``python -m weir``: which weir this is and what it was built with.

Prints the package and engine versions, the build line of
:func:`weir.build_info` (it warns when lz4 or zstd is missing), the codecs
this build can read and write, and where the package is installed.
``--json`` prints the same as one JSON object; ``--require-codecs`` exits 1
when a codec is missing (a check for install scripts). The command-line tool
for stores (``weir check``, ``weir dump``, ...) is the C program ``weir``;
see docs/CLI.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from typing import Any

import weir

#: Every codec name weir knows, in the order the build line lists them.
CODECS = ("none", "lz4", "zstd")


def describe() -> dict[str, Any]:
    """What ``python -m weir`` reports, as a dict."""
    try:
        package_version: str | None = metadata.version("weirdb")
    except metadata.PackageNotFoundError:  # imported from a source tree
        package_version = None
    return {
        "package": "weirdb",
        "package_version": package_version,
        "engine_version": weir.ENGINE_VERSION,
        "build_info": weir.build_info(),
        "codecs": {codec: weir.compression_supported(codec) for codec in CODECS},
        "python": sys.version.split()[0],
        "location": os.path.dirname(os.path.abspath(weir.__file__)),
    }


def _text(info: dict[str, Any]) -> str:
    codecs = ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in info["codecs"].items())
    return "\n".join(
        [
            f"weirdb {info['package_version'] or '(not installed)'}, "
            f"engine {info['engine_version']}",
            f"build:    {info['build_info']}",
            f"codecs:   {codecs}",
            f"python:   {info['python']}",
            f"location: {info['location']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m weir``; returns the exit status."""
    ap = argparse.ArgumentParser(
        prog="python -m weir",
        description="Show the weir version and what this build supports.",
    )
    ap.add_argument("--version", action="store_true", help="print the version and exit")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--require-codecs",
        action="store_true",
        help="exit with status 1 if lz4 or zstd is not compiled in",
    )
    args = ap.parse_args(argv)
    info = describe()
    try:
        if args.version:
            print(info["package_version"] or info["engine_version"])
        elif args.json:
            print(json.dumps(info, indent=2))
        else:
            print(_text(info))
        sys.stdout.flush()
    except BrokenPipeError:
        # `python -m weir | head -1`: the reader left; not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    missing = [name for name, ok in info["codecs"].items() if not ok]
    if args.require_codecs and missing:
        print(f"python -m weir: this build lacks {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
