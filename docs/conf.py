"""Sphinx configuration for specinv's documentation (``make docs``).

Offline by construction: no intersphinx, no theme or asset fetched; everything generated here
comes from the package itself (its docstrings, its click commands, its lazy names) and from
``benchmarks/results/*.md``, so the pages cannot drift from the code. ``make docs`` builds with
``-W -n --keep-going``: a reference that does not resolve fails the build.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

from specinv_cli._version import __version__  # noqa: E402

project = "specinv"
author = "the specinv developers"
copyright = "the specinv developers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "_generated/training_loop.md", "Thumbs.db", ".DS_Store"]
html_theme = "alabaster"
html_title = f"specinv {release}"
html_static_path: list[str] = []
templates_path: list[str] = []

smartquotes = False  # ``--flag`` stays two hyphens, 'quotes' stay as typed (CLI text)
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The docstrings are numpy style (``Parameters``/``Example`` sections, Sphinx roles).
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # an ``Attributes`` section describes fields autodoc also lists
autodoc_member_order = "bysource"
# Every public name a module defines, with or without a docstring (``__all__`` lists what the
# package promises, not all that its pages refer to); imported names are documented where defined.
autodoc_default_options = {"members": True, "undoc-members": True, "ignore-module-all": True,
                           "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Broken references fail the build (make docs passes -n -W). Without intersphinx (offline) the
# types of other projects cannot resolve; these, and only these, are not checked.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|click|soundfile|librosa|numba|matplotlib|rich)(\..*)?"),
    (r"py:.*", r"(Tensor|ndarray|dtype|device)"),  # torch/numpy names as written in annotations
    # the standard library has no offline inventory either
    (r"py:.*", r"(pathlib|os|io|typing|collections|collections\.abc|dataclasses|enum|types|"
               r"contextlib|threading|argparse|subprocess|json|zipfile)\..*"),
    (r"py:.*", r"(Path|PathLike|BinaryIO|TextIO|IO|Iterator|Iterable|Sequence|Mapping|Callable|"
               r"Generator|ContextManager|Any|Literal|Optional|Union)"),
]

# ---------------------------------------------------------------------------------------------
# The API reference: one page per module, generated here from this list so that a module being
# written (functional, transforms) gets its page the moment its file exists.
API = [
    ("The package", ["specinv_cli"]),
    ("Inverting", ["specinv_cli.api", "specinv_cli.functional", "specinv_cli.transforms",
                   "specinv_cli.options", "specinv_cli.errors", "specinv_cli.config"]),
    ("Streaming", ["specinv_cli.streaming", "specinv_cli.algorithms.online", "specinv_cli.algorithms.rtpghi"]),
    ("Files in and out", ["specinv_cli.io", "specinv_cli.io.read", "specinv_cli.io.spectrogram",
                          "specinv_cli.io.encode", "specinv_cli.io.write", "specinv_cli.io.stream"]),
    ("Signal processing", ["specinv_cli.dsp", "specinv_cli.dsp.stft", "specinv_cli.dsp.mel",
                           "specinv_cli.dsp.metrics", "specinv_cli.dsp.ragged", "specinv_cli.dsp.resample",
                           "specinv_cli.dsp.curvature"]),
    ("Algorithms", ["specinv_cli.algorithms.registry", "specinv_cli.algorithms.base",
                    "specinv_cli.algorithms.gla", "specinv_cli.algorithms.agla",
                    "specinv_cli.algorithms.admm", "specinv_cli.algorithms.dm",
                    "specinv_cli.algorithms.rtisi", "specinv_cli.algorithms.lbfgs",
                    "specinv_cli.algorithms.pghi", "specinv_cli.algorithms.spsi"]),
    ("Companion commands' logic", ["specinv_cli.companion.analysis", "specinv_cli.companion.plot",
                                   "specinv_cli.companion.report", "specinv_cli.companion.compare"]),
    ("Evaluation metrics and statistics", ["specinv_cli.companion.suite", "specinv_cli.companion.perceptual",
                                           "specinv_cli.companion.pitch", "specinv_cli.companion.mcd",
                                           "specinv_cli.companion.waveform", "specinv_cli.companion.stats"]),
    ("Internals the above refer to", ["specinv_cli.batch.blocks", "specinv_cli.dsp.kernels",
                                      "specinv_cli.util", "specinv_cli.util.limits", "specinv_cli.util.text",
                                      "specinv_cli.util.stdio", "specinv_cli.util.sniff", "specinv_cli.util.interrupt",
                                      "specinv_cli.util.threads", "specinv_cli.util.allocator",
                                      "specinv_cli.cli.flags"]),
]
GENERATED = DOCS / "_generated"


def _source_file(module: str) -> Path:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _write(path: Path, text: str) -> None:
    """Rewrite only on change, so that an unchanged page is not rebuilt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _module_page(module: str) -> str:
    title = f"``{module}``"
    head = f"{title}\n{'=' * len(title)}\n\n"
    if not _source_file(module).exists():
        print(f"docs: {_source_file(module).relative_to(ROOT)} is not in this checkout yet; its page is a stub")
        return head + (f".. py:module:: {module}\n\n"
                       ".. note::\n\n   This module is not in this checkout yet; its page fills in once it is.\n")
    if module == "specinv_cli":
        return head + (".. automodule:: specinv_cli\n   :no-members:\n\n"
                       "The names below are imported lazily (on first use), so ``import specinv_cli`` "
                       "does not import torch. Each is documented where it is defined:\n\n"
                       ".. specinv-lazy-names::\n")
    return head + f".. automodule:: {module}\n"


def _generate_api() -> None:
    lines = ["Python API reference", "====================", "",
             "Generated from the docstrings (numpy style) at every build by Sphinx autodoc and napoleon. "
             "Each page shows every public name its module defines (functions and classes with or "
             "without a docstring, constants with a ``#:`` comment); a name a module imports is "
             "documented once, where it is defined.", ""]
    for group, modules in API:
        lines += [".. toctree::", "   :maxdepth: 1", f"   :caption: {group}", ""]
        lines += [f"   {m}" for m in modules] + [""]
        for m in modules:
            _write(GENERATED / "api" / f"{m}.rst", _module_page(m))
    _write(GENERATED / "api" / "index.rst", "\n".join(lines))


_generate_api()

# docs/examples/training_loop.py (the "Training with specinv" page) is being written: include it
# once it exists.
_example = DOCS / "examples" / "training_loop.py"
if _example.exists():
    _write(GENERATED / "training_loop.md", "```{literalinclude} /examples/training_loop.py\n:language: python\n```\n")
else:
    print("docs: docs/examples/training_loop.py is not in this checkout yet; its page says so")
    _write(GENERATED / "training_loop.md", "*(docs/examples/training_loop.py is not in this checkout yet.)*\n")

# ---------------------------------------------------------------------------------------------
# specinv_cli's lazy names, listed from the package itself (its __all__ and _LAZY table): each
# links to its definition, so a lazy name whose target moved is a broken reference.
from docutils.parsers.rst import Directive  # noqa: E402
from docutils.statemachine import StringList  # noqa: E402
from docutils import nodes  # noqa: E402


class LazyNames(Directive):
    def run(self):
        pkg = importlib.import_module("specinv_cli")
        rows = []
        for name in pkg.__all__:
            if name == "__version__":
                rows.append(("``__version__``", "the version string"))
            elif name in pkg._LAZY:
                mod, attr = pkg._LAZY[name]
                rows.append((f"``{name}``", f":py:obj:`specinv_cli.{mod}.{attr}`"))
            else:  # a lazily imported module
                try:
                    target = getattr(pkg, name).__name__
                except ImportError:  # not written yet: its stub page holds the target
                    target = f"specinv_cli.{name}"
                rows.append((f"``{name}``", f":mod:`{target}`"))
        text = [".. list-table::", "   :header-rows: 1", "", "   * - name", "     - defined as"]
        for a, b in rows:
            text += [f"   * - {a}", f"     - {b}"]
        node = nodes.container()
        self.state.nested_parse(StringList(text, source="specinv_cli.__all__"), self.content_offset, node)
        return node.children


# ---------------------------------------------------------------------------------------------
# The house style writes parameters as ``name : description`` (no type). For napoleon that text
# would be a type, cross-referenced word by word; turn such lines into numpy's ``name`` plus an
# indented description. A line whose right side reads as a type (``config : STFTConfig``) stays.
_SECTIONS = {"parameters", "other parameters", "attributes", "keyword arguments", "params"}
_TYPE_WORD = r"(?:[A-Z]\w*|torch\.\w+|np\.\w+|numpy\.\w+|int|float|str|bool|bytes|list|dict|tuple|callable|None|optional)(?:\[[^\]]*\])?"
_LOOKS_LIKE_TYPE = re.compile(rf"^{_TYPE_WORD}(?:\s*(?:\||,|or)\s*{_TYPE_WORD})*$")
_FIELD = re.compile(r"^(\s*)([\w*][\w*, ]*?)\s+:\s+(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_header(lines: list[str], k: int) -> bool:
    nxt = lines[k + 1].strip() if k + 1 < len(lines) else ""
    return bool(lines[k].strip()) and len(nxt) >= 3 and set(nxt) == {"-"}


def _house_params(app, what, name, obj, options, lines):
    section, indent = None, 0
    out: list[str] = []
    for i, line in enumerate(lines):
        if _is_header(lines, i):
            section, indent = line.strip().lower(), _indent(line)
        elif (section in _SECTIONS and line.strip() and _indent(line) == indent
              and not _FIELD.match(line) and set(line.strip()) != {"-"}):
            # Prose after the fields at their indent (``Returns ...``): napoleon would read it as
            # one more field; when no field follows, it becomes a Notes section.
            rest = []
            for k in range(i + 1, len(lines)):
                if _is_header(lines, k):
                    break
                rest.append(lines[k])
            if not any(_FIELD.match(r) and _indent(r) == indent for r in rest):
                out += [" " * indent + "Notes", " " * indent + "-----"]
                section = "notes"
        m = _FIELD.match(line)
        if (section in _SECTIONS and m and len(m.group(1)) == indent
                and not _LOOKS_LIKE_TYPE.match(m.group(3).strip())):
            out += [m.group(1) + m.group(2), m.group(1) + "    " + m.group(3)]
        else:
            out.append(line)
    lines[:] = out


# napoleon reads an attribute's first line ``type: description``; the house's ``#:`` comments
# are prose ("For non-iterative methods: the function..."): keep them as written.
_ATTRIBUTE_KINDS = {"attribute", "data", "property"}
_kept: dict[str, list[str]] = {}


def _keep_attribute_text(app, what, name, obj, options, lines):
    if what in _ATTRIBUTE_KINDS and lines:
        head = lines[0].split(":", 1)[0].strip()
        if ":" in lines[0] and not _LOOKS_LIKE_TYPE.match(head):
            _kept[name] = list(lines)


def _restore_attribute_text(app, what, name, obj, options, lines):
    if name in _kept:
        lines[:] = _kept.pop(name)


# A package's __init__ re-exports names defined in its modules: document each once, where it
# is defined (when that module has a page), so references have one target.
_current_module: list[str] = []


def _note_module(app, what, name, obj, options, lines):
    if what == "module":
        _current_module[:] = [name]


def _assigned_names(module: str) -> set[str]:
    """Names a module's own top-level statements bind (not its imports)."""
    import ast

    try:
        tree = ast.parse(_source_file(module).read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return set()
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _skip_reexports(app, what, name, obj, skip, options):
    if what != "module" or not _current_module:
        return None
    defined_in = getattr(obj, "__module__", None)
    if isinstance(obj, type(sys)):
        return True  # submodules have their own pages
    if callable(obj) and isinstance(defined_in, str) and defined_in != _current_module[0]:
        return True  # imported class or function
    if not callable(obj) and name not in _assigned_names(_current_module[0]):
        return True  # imported constant
    return None


# A reference resolves as the name would in Python, in the module that wrote it: ``InputError``
# in ``io/read.py`` (which imports it) is ``specinv_cli.errors.InputError``. Only names that exist
# in that namespace resolve; a stale one still fails the build.
def _resolve_as_python(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    scopes = []
    if node.get("py:module"):
        scopes.append(node["py:module"])
    if target.startswith("specinv_cli."):
        scopes.append(None)
    for scope in scopes:
        obj = _lookup(scope, target)
        name = _canonical(obj)
        if name and name != target:
            py = env.domains["py"]
            found = py.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name, node, contnode)
            if found is not None:
                return found
    return None


def _lookup(scope, target):
    parts = target.split(".")
    if scope is None:  # a full dotted path: the longest importable module, then attributes
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except Exception:
                continue
            return _walk(obj, parts[k:])
        return None
    try:
        return _walk(importlib.import_module(scope), parts)
    except Exception:
        return None


def _walk(obj, parts):
    for p in parts:
        obj = getattr(obj, p, None)
        if obj is None:
            return None
    return obj


def _canonical(obj):
    if isinstance(obj, type(sys)):
        return obj.__name__
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and module.startswith("specinv_cli"):
        return f"{module}.{qualname}"
    return None


# Every benchmarks/results/*.md must be included by benchmarks.md: a new table cannot be missed.
def _check_benchmarks(app):
    from sphinx.util import logging

    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    for table in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        if f"results/{table.name}" not in page:
            logging.getLogger(__name__).warning(
                f"benchmarks/results/{table.name} is not included in docs/benchmarks.md")


# click's help is plain text, read by sphinx-click as reStructuredText: ``|X|`` would be a
# substitution, ``mels/*.npy`` an emphasis, ``SLURM_`` a link. Escape them (a line block's
# leading ``| `` stays).
_RST_SPECIAL = re.compile(r"([*|`]|(?<=\w)_(?=\W|$))")


def _plain_help(app, ctx, lines):
    for i, line in enumerate(lines):
        body = line.lstrip()
        if body.startswith(".. ") or body.startswith(":"):
            continue
        lead = line[: len(line) - len(body)]
        if body.startswith("| "):
            lead, body = lead + "| ", body[2:]
        lines[i] = lead + _RST_SPECIAL.sub(lambda m: "\\" + m.group(0), body)


def setup(app):
    for event in ("description", "options", "arguments", "epilog"):
        app.connect(f"sphinx-click-process-{event}", _plain_help)
    app.add_directive("specinv-lazy-names", LazyNames)
    app.connect("autodoc-process-docstring", _note_module, priority=100)
    app.connect("autodoc-process-docstring", _house_params, priority=400)  # before napoleon (500)
    app.connect("autodoc-process-docstring", _keep_attribute_text, priority=450)
    app.connect("autodoc-process-docstring", _restore_attribute_text, priority=600)  # after napoleon
    app.connect("autodoc-skip-member", _skip_reexports)
    app.connect("builder-inited", _check_benchmarks)
    app.connect("missing-reference", _resolve_as_python)
    return {"parallel_read_safe": True}
