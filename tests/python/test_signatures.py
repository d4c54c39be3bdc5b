"""inspect.signature works on every public callable of weir and agrees with
the type stubs.

The C extension's methods carry their signatures in their docstrings
(``"get($self, key, default=None, *, snapshot=None)\\n--\\n\\n..."``), which
CPython exposes as ``__text_signature__``. This test reads python/weir/_weir.pyi
(shipped next to the extension) with ``ast`` and, for every function, class
and method it declares, checks that ``inspect.signature`` succeeds on the
runtime object and gives the same parameters: the same names in the same
order, the same kinds (positional-only, keyword-only, ...), and the same
defaults where the stub spells one out. It also checks the other direction:
every public method of the extension's classes is in the stub. Python-level
names in ``weir.__all__`` (``weir.check``, ``weir.retry``, ...) are only
checked to have a signature.

Exception classes are left out: like the built-in ones, they take
BaseException's arguments and have no signature of their own.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import weir
from weir import _weir

STUB = Path(_weir.__file__).with_name("_weir.pyi")

#: Types the user never constructs; DB and WriteBatch methods return them.
NOT_CONSTRUCTIBLE = {"Snapshot", "Iterator", "RangeIterator", "Transaction", "ArrowScan"}

#: Sentinel for "the stub gives a default but not a literal one (``...``)".
SOME_DEFAULT = object()


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    #: inspect.Parameter.empty, SOME_DEFAULT, or the literal default.
    default: Any


def stub_params(fn: ast.FunctionDef, drop_first: bool) -> list[Param]:
    a = fn.args
    out: list[Param] = []
    positional = [(p, inspect.Parameter.POSITIONAL_ONLY) for p in a.posonlyargs] + [
        (p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in a.args
    ]
    first_default = len(positional) - len(a.defaults)
    for i, (p, kind) in enumerate(positional):
        default = a.defaults[i - first_default] if i >= first_default else None
        out.append(Param(p.arg, kind, literal(default)))
    if a.vararg:
        out.append(Param(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append(Param(p.arg, inspect.Parameter.KEYWORD_ONLY, literal(d)))
    if a.kwarg:
        out.append(Param(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return out[1:] if drop_first else out


def literal(node: ast.expr | None) -> Any:
    if node is None:
        return inspect.Parameter.empty
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return SOME_DEFAULT
    return ast.literal_eval(node)


def is_overload(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in fn.decorator_list)


def is_property(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def group(body: list[ast.stmt]) -> dict[str, list[ast.FunctionDef]]:
    """Function definitions by name (several when overloaded)."""
    out: dict[str, list[ast.FunctionDef]] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef) and not is_property(node):
            out.setdefault(node.name, []).append(node)
    return out


def is_exception(cls: ast.ClassDef) -> bool:
    return any(
        isinstance(b, ast.Name) and (b.id == "Exception" or b.id.endswith("Error"))
        for b in cls.bases
    )


STUB_TREE = ast.parse(STUB.read_text(encoding="utf-8"))
STUB_FUNCTIONS = group(STUB_TREE.body)
STUB_CLASSES = {
    node.name: group(node.body)
    for node in STUB_TREE.body
    if isinstance(node, ast.ClassDef) and not is_exception(node)
}


def expected(defs: list[ast.FunctionDef], drop_first: bool) -> list[Param]:
    """The parameters a runtime signature must have. For overloads: the
    longest overload's names and kinds; a parameter some overload leaves out
    must have a default at run time (whatever its value)."""
    variants = [stub_params(d, drop_first) for d in defs if is_overload(d)] or [
        stub_params(defs[-1], drop_first)
    ]
    longest = max(variants, key=len)
    for v in variants:
        for p in v:
            assert any((q.name, q.kind) == (p.name, p.kind) for q in longest), (
                f"overload parameter {p.name} missing from the longest overload"
            )
    out = []
    for p in longest:
        everywhere = all(any(q.name == p.name for q in v) for v in variants)
        out.append(p if everywhere else Param(p.name, p.kind, SOME_DEFAULT))
    return out


def runtime_params(obj: Any) -> list[Param]:
    sig = inspect.signature(obj)  # the point of the test: must not raise
    params = list(sig.parameters.values())
    if params and params[0].name == "self" and params[0].kind is inspect.Parameter.POSITIONAL_ONLY:
        params = params[1:]
    return [Param(p.name, p.kind, p.default) for p in params]


def assert_agrees(where: str, runtime: list[Param], stub: list[Param]) -> None:
    got = [(p.name, p.kind.name) for p in runtime]
    want = [(p.name, p.kind.name) for p in stub]
    assert got == want, f"{where}: runtime {got} != stub {want}"
    for r, s in zip(runtime, stub, strict=True):
        if s.default is inspect.Parameter.empty:
            assert r.default is inspect.Parameter.empty, (
                f"{where}: {r.name} has a default at run time"
            )
        elif s.default is SOME_DEFAULT:
            assert r.default is not inspect.Parameter.empty, f"{where}: {r.name} has no default"
        else:
            assert r.default == s.default and type(r.default) is type(s.default), (
                f"{where}: {r.name}={r.default!r} at run time, {s.default!r} in the stub"
            )


def method_cases() -> list[tuple[str, str]]:
    return [(cls, name) for cls, methods in STUB_CLASSES.items() for name in methods]


def test_the_stub_declares_the_extensions_types() -> None:
    assert set(STUB_CLASSES) == {
        "DB",
        "Snapshot",
        "Iterator",
        "RangeIterator",
        "WriteBatch",
        "Transaction",
        "ArrowScan",
    }


@pytest.mark.parametrize("name", sorted(STUB_FUNCTIONS))
def test_module_function_signature(name: str) -> None:
    assert_agrees(name, runtime_params(getattr(_weir, name)), expected(STUB_FUNCTIONS[name], False))


@pytest.mark.parametrize(("cls_name", "name"), method_cases())
def test_method_signature(cls_name: str, name: str) -> None:
    cls = getattr(_weir, cls_name)
    defs = STUB_CLASSES[cls_name][name]
    where = f"{cls_name}.{name}"
    if name in ("__init__", "__new__"):
        # The constructor's signature is the class's (from its docstring).
        assert cls_name not in NOT_CONSTRUCTIBLE
        runtime = runtime_params(cls)
    else:
        runtime = runtime_params(getattr(cls, name))
    assert_agrees(where, runtime, expected(defs, drop_first=True))


@pytest.mark.parametrize("cls_name", sorted(NOT_CONSTRUCTIBLE))
def test_types_made_by_methods_cannot_be_constructed(cls_name: str) -> None:
    with pytest.raises(TypeError, match="cannot create"):
        getattr(_weir, cls_name)()


@pytest.mark.parametrize("cls_name", sorted(STUB_CLASSES))
def test_every_public_method_is_in_the_stub(cls_name: str) -> None:
    cls = getattr(_weir, cls_name)
    public = {
        name
        for name, attr in vars(cls).items()
        if not name.startswith("_") and callable(attr) and not isinstance(attr, property)
    }
    missing = public - set(STUB_CLASSES[cls_name])
    assert not missing, f"{cls_name} methods without a stub: {sorted(missing)}"
    # Dunder methods from the method tables (__enter__, __exit__, ...) too.
    own_dunders = {
        name
        for name, attr in vars(cls).items()
        if name.startswith("__")
        and type(attr).__name__ in ("method_descriptor", "classmethod_descriptor")
    }
    missing = own_dunders - set(STUB_CLASSES[cls_name])
    assert not missing, f"{cls_name} methods without a stub: {sorted(missing)}"


def test_every_public_name_of_weir_has_a_signature() -> None:
    checked = []
    for name in weir.__all__:
        obj = getattr(weir, name)
        if not callable(obj) or (isinstance(obj, type) and issubclass(obj, BaseException)):
            continue
        inspect.signature(obj)  # raises ValueError if it has none
        checked.append(name)
        if isinstance(obj, type):
            for meth_name, meth in vars(obj).items():
                if not meth_name.startswith("_") and callable(meth):
                    inspect.signature(getattr(obj, meth_name))
    assert {"DB", "WriteBatch", "destroy", "build_info", "check", "retry"} <= set(checked)


def test_the_docstrings_keep_their_prose() -> None:
    # The signature line is stripped from __doc__; the description stays.
    assert weir.DB.get.__doc__ and "default" in weir.DB.get.__doc__
    assert weir.DB.__doc__ and weir.DB.__doc__.startswith("An open weir store")
    assert weir.DB.get.__text_signature__ == "($self, key, default=None, *, snapshot=None)"
