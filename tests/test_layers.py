"""docs/design.md, "Layers": a module imports only from its own layer or below, and nothing below
the notebook layer imports IPython or ipywidgets. Read from the source (every import statement,
those inside functions too), for the modules the page names; a module it does not name is not
checked."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Optional

PACKAGE = Path(__file__).resolve().parent.parent / "miniwdl_jupyter"

# As docs/design.md lists them, from the ground up (a platform folder's parts by their layer).
LAYERS = {
    1: ["errors", "protocol", "run_state", "registry", "files"],
    2: ["config", "launch_record", "run_dirs", "wdl_source", "wdl_inputs", "run_outputs", "launcher"],
    3: ["backends", "slurm.backend", "aws.backend"],
    4: ["run_errors", "monitor", "companions", "slurm.companion", "aws.companion"],
    5: ["runs", "backend_choice", "miniwdl_command", "leftovers", "steps", "images"],
    6: ["launchers", "slurm.launcher", "aws.launcher", "wes"],
    7: ["magics", "display", "labext"],
}
NOTEBOOK_ONLY = ("IPython", "ipywidgets")


def layer_of(module: str) -> Optional[int]:
    """The layer of the longest listed prefix of `module` (a dotted name inside the package)."""
    found = [(len(prefix), layer) for layer, prefixes in LAYERS.items() for prefix in prefixes
             if module == prefix or module.startswith(prefix + ".")]
    return max(found)[1] if found else None


def imported(path: Path, module: str) -> Iterator[str]:
    """Dotted names a module imports: inside the package without its prefix, others as written."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name[len("miniwdl_jupyter."):] if alias.name.startswith("miniwdl_jupyter.") else alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "miniwdl_jupyter":
                base = node.module[len("miniwdl_jupyter"):].lstrip(".")
            else:
                yield node.module or ""
                continue
            yield from (".".join(filter(None, [base, alias.name])) for alias in node.names)


def modules() -> Iterator[tuple]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield path, module


def test_each_listed_module_imports_only_its_own_layer_or_below():
    upward = []
    for path, module in modules():
        own = layer_of(module)
        if own is None:
            continue
        for name in set(imported(path, module)):
            other = layer_of(name)
            if other is not None and other > own:
                upward.append(f"{module} (layer {own}) imports {name} (layer {other})")
    assert not upward, "\n".join(sorted(upward))
    assert layer_of("backends.docker_run") == 3 and layer_of("slurm.launcher") == 6, "the table reads as the page"


def test_nothing_below_the_notebook_layer_imports_ipython_or_ipywidgets():
    found = [f"{module} imports {name}" for path, module in modules() if (layer_of(module) or 7) < 7
             for name in set(imported(path, module)) if name.split(".")[0] in NOTEBOOK_ONLY]
    assert not found, "\n".join(found)
    assert any(name.split(".")[0] == "IPython" for name in imported(PACKAGE / "magics.py", "magics")), "the check sees imports"
