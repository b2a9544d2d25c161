"""Which reference answers a handed-in file reaches, read from its syntax tree before anything runs.

`lab grade` refuses a file that imports `solutions` or one of the lab's own
answers (`LAB_ANSWERS` in the manifest: `plugins.dcgan.DCGANGenerator`, ...), however it is
spelled: `from m import name`, an import under another name
(`import lab.data.captions as _c` then `_c.load_captions`), a module object
from `importlib.import_module(...)`, `__import__(...)` or `sys.modules[...]`,
`getattr(module, "name")`, a copy of any of those under a new name, or a
`"module:attr"` plugin string.

Names built at run time (`"DCGAN" + "Generator"`) are out of a syntax tree's
reach; the grading child looks at the imported module's objects themselves for
those (`lab.course.grade_child`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

IMPORTERS = ("importlib.import_module", "importlib.__import__")
BUILTINS = ("__import__", "getattr")


def is_solutions(name: str) -> bool:
    return name == "solutions" or name.startswith("solutions.")


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Names:
    """Resolves expressions to the dotted names they stand for, through the file's own aliases."""

    def __init__(self, tree: ast.AST):
        self.aliases: dict[str, str] = {}
        for _ in range(3):  # aliases of aliases, in any order in the file
            for node in ast.walk(tree):
                self._bind(node)

    def _bind(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:  # `import a.b` binds `a`, `import a.b as c` binds `c`
                self.aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.name != "*":
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = self.resolve(node.value)
            for target in targets:
                if value and isinstance(target, ast.Name) and target.id != value:
                    self.aliases[target.id] = value

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted name `node` evaluates to, when the syntax says so."""
        if isinstance(node, ast.Name):  # only names the file imported or assigned from an import
            return self.aliases.get(node.id, node.id if node.id in BUILTINS else None)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Subscript):  # sys.modules["a.b"]
            return _text(node.slice) if self.resolve(node.value) == "sys.modules" else None
        if isinstance(node, ast.Call) and node.args:
            function, first = self.resolve(node.func), node.args[0]
            if function in IMPORTERS:
                return _text(first)
            if function == "__import__" and (name := _text(first)):  # the top package, unless a fromlist is given
                return (
                    name
                    if len(node.args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
                    else name.split(".")[0]
                )
            if function == "getattr" and len(node.args) >= 2 and (attr := _text(node.args[1])):
                base = self.resolve(first)
                return f"{base}.{attr}" if base else None
        return None

    def reached(self, node: ast.AST) -> Iterator[str]:
        """The dotted names one syntax node imports, resolves to, or spells out as a string."""
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ""
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif text := _text(node):  # import_module("solutions..."), "module:attr" specs
            yield text.strip().replace(":", ".")
        elif isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)) and (name := self.resolve(node)):
            yield name


def _is_answer(name: str, answers: set[str]) -> bool:
    if name.endswith(".*"):
        return any(answer.startswith(name[:-1]) for answer in answers)
    return is_solutions(name) or any(name == a or name.startswith(f"{a}.") for a in answers)


def borrowed(source: bytes, answers: set[str]) -> tuple[int, str] | None:
    """The first line of `source` that reaches a reference answer, and the shortest name it reaches it by."""
    tree = ast.parse(source)
    names = _Names(tree)
    found = [
        (node.lineno, len(name), name)
        for node in ast.walk(tree)
        if hasattr(node, "lineno")
        for name in names.reached(node)
        if _is_answer(name, answers)
    ]
    return min(found)[::2] if found else None
