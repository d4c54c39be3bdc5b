"""No module of the weir package imports another layer's private names.

The rule (docs/ARCHITECTURE.md, "The Python layers"):

* A *layer* is a subpackage of ``weir`` (``weir.stores``, ``weir.stream``,
  ``weir.cluster``, ``weir.materialize``) or a top-level public module
  (``weir.table``, ``weir.codecs``, ``weir.durable``). The top-level
  package ``weir`` with its private modules (``weir._weir``, the C
  extension, ``weir._retry``, ``weir._arrow``) is the binding layer.
* A module may import a private name (a module or a name starting with
  one underscore) only from its own layer. Everything else goes through
  public names: ``from weir import DB``, ``from weir.stores import
  StoreBackend``.
* ``weir._weir`` is imported only by the binding layer itself, which
  re-exports its names as ``weir.DB``, ``weir.CorruptionError``, ...; the
  layers above use those.
* ``weir._enrich`` (the C join kernel built beside ``weir._weir``) belongs
  to ``weir.materialize``, its only user.

The check parses every module with ``ast`` (nothing is imported), so it
also covers imports under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import weir

PACKAGE = pathlib.Path(weir.__file__).resolve().parent
SOURCE = pathlib.Path(__file__).resolve().parents[2] / "python" / "weir"
#: Private modules that belong to a layer other than the one their path says.
OWNER = {"weir._enrich": "materialize"}


def _modules(root: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def layer_of(module: str) -> str:
    """``weir.stores._engine`` -> ``stores``; ``weir._weir`` -> ``weir``."""
    if module in OWNER:
        return OWNER[module]
    parts = module.split(".")
    if len(parts) < 2 or _is_private(parts[1]):
        return "weir"
    return parts[1]


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def violations(module: str, path: pathlib.Path) -> list[str]:
    """Every import in ``path`` that breaks the rule, as readable lines."""
    tree = ast.parse(path.read_text(), str(path))
    mine = layer_of(module)
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            parts = target.split(".")
            if parts[0] != "weir":
                continue
            # The first private component decides whose private name it is.
            for i, part in enumerate(parts):
                if not _is_private(part):
                    continue
                owner_module = ".".join(parts[: i + 1])
                owner = layer_of(owner_module if i > 0 else "weir")
                if owner_module == "weir._weir" and mine != "weir":
                    found.append(f"{module}:{node.lineno}: {target} (use weir's public names)")
                elif owner != mine:
                    found.append(f"{module}:{node.lineno}: {target} ({mine} -> {owner})")
                break
    return found


@pytest.mark.parametrize("root", [SOURCE, PACKAGE], ids=["source", "installed"])
def test_no_module_imports_another_layers_private_names(root: pathlib.Path) -> None:
    if not root.is_dir():
        pytest.fail(f"{root} is missing")
    bad = [v for module, path in _modules(root) for v in violations(module, path)]
    assert not bad, "imports of another layer's private names:\n" + "\n".join(bad)


def test_the_check_finds_what_it_must(tmp_path: pathlib.Path) -> None:
    """The rule itself, on made-up modules: it must be able to fail."""
    pkg = tmp_path / "weir"
    (pkg / "stream").mkdir(parents=True)
    (pkg / "stores").mkdir()
    (pkg / "__init__.py").write_text("from ._weir import DB\n")
    (pkg / "stores" / "__init__.py").write_text("from ._engine import EngineBackend\n")
    (pkg / "stream" / "__init__.py").write_text(
        "from ..stores._common import TextOrBytesKeys\n"
        "from ..stores import StoreBackend\n"
        "from .._weir import DB\n"
        "from ._graph import Stream\n"
        "from weir.materialize._common import SchemaError\n"
    )
    got = [v for module, path in _modules(pkg) for v in violations(module, path)]
    assert got == [
        "weir.stream:1: weir.stores._common.TextOrBytesKeys (stream -> stores)",
        "weir.stream:3: weir._weir.DB (use weir's public names)",
        "weir.stream:5: weir.materialize._common.SchemaError (stream -> materialize)",
    ]
    assert layer_of("weir._enrich") == "materialize"
