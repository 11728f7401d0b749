"""The package's architecture, checked from its source: each folder is one layer and imports only
the layers below it (module-level and deferred imports alike), no import cycle between modules,
and no module imports another's private names."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import specinv_cli

ROOT = Path(specinv_cli.__file__).parent

#: Bottom to top. A module belongs to the longest prefix listed; each may import only its own
#: layer's modules and lower layers'.
LAYERS = [
    ("errors", "_version", "util", "data"),  # standard library only (data: the bundled example)
    ("config",),                             # settings and presets
    ("io",),                                 # files in and out, what they hold
    ("dsp",),                                # STFT, projector, mel, metrics, kernels
    ("algorithms",),                         # one file per method, the registry
    ("options", "api", "functional", "streaming"),  # the library's entry points
    ("transforms",),                         # nn.Modules over the functional layer
    ("batch",),                              # many inputs: pipeline, blocks
    ("companion",),                          # eval, plot, report, bench
    ("cli", "__main__"),                     # the command line
]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def layer_of(mod: str) -> int | None:
    best, layer = -1, None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and len(n) > best:
                best, layer = len(n), i
    return layer


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` for every import of a package module in ``path`` (relative
    imports resolved; names are those of ``from m import a, b``)."""
    mod = module_name(path)
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    if mod == "":
        pkg = []
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("specinv_cli"):
                target = node.module[len("specinv_cli"):].lstrip(".")
            else:
                continue
            names = [a.name for a in node.names]
            if not node.module or (node.level and target in ("", ".".join(pkg))):
                # ``from . import x``: x may be a module of the package
                subs = [f"{target}.{n}".lstrip(".") for n in names
                        if (ROOT / Path(*f"{target}.{n}".lstrip(".").split("."))).with_suffix(".py").exists()
                        or (ROOT / Path(*f"{target}.{n}".lstrip(".").split("."))).is_dir()]
                if subs:
                    out += [(s, [], node.lineno) for s in subs]
                    continue
            out.append((target, names, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("specinv_cli."):
                    out.append((a.name[len("specinv_cli."):], [], node.lineno))
    return out


def graph():
    """``{module: [(imported module, names, line)]}`` over the package, without the lazy facade
    ``specinv_cli/__init__.py`` (it names modules as strings, and only for callers)."""
    g = {}
    for path in sorted(ROOT.rglob("*.py")):
        mod = module_name(path)
        if mod == "":
            continue
        g[mod] = [(t, n, ln) for t, n, ln in imports_of(path) if t]
    return g


def upward(g) -> list[str]:
    bad = []
    for mod, edges in g.items():
        lm = layer_of(mod)
        for target, _, line in edges:
            lt = layer_of(target)
            if lm is None or lt is None:
                bad.append(f"{mod}:{line}: {target} — a module outside the layer table")
            elif lt > lm:
                bad.append(f"{mod}:{line} imports {target} (layer {lt} above {lm})")
    return bad


def _owner(g, target: str) -> str:
    """The module a dotted import names (``dsp`` -> ``dsp`` package; ``dsp.stft`` -> itself)."""
    while target and target not in g:
        target = target.rpartition(".")[0]
    return target


def cycles(g) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or self-imports."""
    edges = {m: sorted({_owner(g, t) for t, _, _ in es if _owner(g, t) and _owner(g, t) != m}) for m, es in g.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def private_imports(g) -> list[str]:
    bad = []
    for mod, edges in g.items():
        for target, names, line in edges:
            if _owner(g, target) == mod:
                continue
            for n in names:
                if n.startswith("_") and not (n.startswith("__") and n.endswith("__")):
                    bad.append(f"{mod}:{line} imports {target}.{n}")
    return bad


def test_every_module_is_in_a_layer():
    g = graph()
    assert len(g) > 40
    assert [m for m in g if layer_of(m) is None] == []


def test_no_upward_import():
    assert upward(graph()) == []


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_private_name_crosses_modules():
    assert private_imports(graph()) == []


def test_command_modules_do_not_import_each_other():
    """One module per command: each imports only the shared modules of cli/, never another command."""
    shared = {"cli.common", "cli.flags", "cli.progress"}
    commands = {m for m in graph() if m.startswith("cli.") and m not in shared | {"cli.app"}}
    g = graph()
    for m in commands:
        assert {_owner(g, t) for t, _, _ in g[m] if t.startswith("cli")} <= shared, m


@pytest.mark.parametrize("edge", ["upward", "cycle", "private"])
def test_the_checks_catch_what_they_look_for(edge):
    """The checks fail on a graph that breaks the rule (so the tests above can fail)."""
    g = {k: list(v) for k, v in graph().items()}
    if edge == "upward":
        g["dsp.stft"].append(("batch.pipeline", ["Pipeline"], 1))
        assert upward(g) == ["dsp.stft:1 imports batch.pipeline (layer 7 above 3)"]
    elif edge == "cycle":
        g["dsp.mel"].append(("dsp.ragged", ["RaggedSTFT"], 1))
        g["dsp.ragged"].append(("dsp.mel", ["MelTransform"], 1))
        assert ["dsp.mel", "dsp.ragged"] in cycles(g)
    else:
        g["api"].append(("dsp.stft", ["_jit"], 1))
        assert private_imports(g) == ["api:1 imports dsp.stft._jit"]
