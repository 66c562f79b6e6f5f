"""The `.pyi` stubs describe exactly what the compiled module exports."""

import ast
import inspect
import pathlib

import clusterm
import clusterm._native as native

STUB = pathlib.Path(clusterm.__file__).with_name("_native.pyi")


def stub_tree():
    return ast.parse(STUB.read_text())


def test_every_export_has_a_stub_and_every_stub_exists():
    tree = stub_tree()
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    exported = {
        name
        for name, obj in vars(native).items()
        if not name.startswith("_") and (inspect.isclass(obj) or callable(obj))
    }
    assert exported - stubbed == set(), "exports without stubs"
    assert stubbed - exported == set(), "stubs without exports"
    assert set(clusterm.__all__) >= exported


def test_stubbed_methods_match_the_classes():
    for node in stub_tree().body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(native, node.name)
        stubbed = {
            n.name
            for n in node.body
            if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")
        } | {
            t.id
            for n in node.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
            for t in [n.target]
        }
        public = {n for n in dir(cls) if not n.startswith("_")} - set(dir(Exception))
        missing = public - stubbed - {"code", "message"}
        assert missing == set(), f"{node.name}: not in the stub: {sorted(missing)}"
        extra = {s for s in stubbed if not hasattr(cls, s)} - {"code", "message"}
        assert extra == set(), f"{node.name}: stubbed but absent: {sorted(extra)}"


def test_public_classes_methods_and_properties_have_docstrings():
    for name in clusterm.__all__:
        obj = getattr(clusterm, name)
        if not inspect.isclass(obj):
            continue
        assert obj.__doc__ and obj.__doc__.strip(), f"{name} has no docstring"
        if issubclass(obj, BaseException):
            continue
        for attr in dir(obj):
            value = inspect.getattr_static(obj, attr)
            if attr.startswith("_") or isinstance(value, obj):
                continue  # enum members are documented by their class
            doc = getattr(value, "__doc__", None)
            assert doc and doc.strip(), f"{name}.{attr} has no docstring"
