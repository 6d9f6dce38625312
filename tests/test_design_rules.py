"""docs/design.md's rules, read from the source. "Layers": a module imports only from its own
layer or below, and nothing below the notebook layer imports IPython or ipywidgets (every import
statement, those inside functions too, of the modules the page names; a module it does not name
is not checked). "One way to read a setting": our sections are read only through
`config.option`, and every key read so has its default in defaults.cfg."""

from __future__ import annotations

import ast
import configparser
import re
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


OUR_SECTIONS = ("jupyter", "docker_run", "local", "usage", "notebook_steps", "aws", "wes", "slurm")
# A Loader read directly: cfg["jupyter"][...], loader.get_int("slurm", ...), self.cfg.get("aws", ...)
DIRECT_READ = re.compile(r'\b(?:cfg|loader)\s*(?:\[\s*"({0})"|\.(?:get|get_\w+|has_option)\(\s*"({0})")'.format("|".join(OUR_SECTIONS)))
OPTION_CALL = re.compile(r'\boption\(\s*[\w.]+\s*,\s*"(\w+)"\s*,\s*"(\w+)"')


def test_our_sections_are_read_only_through_config_option_with_a_default_in_defaults_cfg():
    defaults = configparser.ConfigParser()
    defaults.read(PACKAGE / "defaults.cfg")
    direct, no_default, checked = [], [], 0
    for path, module in modules():
        if module == "config":
            continue
        source = path.read_text()
        direct += [f"{module}: {m.group(0)}" for m in DIRECT_READ.finditer(source)]
        for section, key in OPTION_CALL.findall(source):
            checked += 1
            if section in OUR_SECTIONS and not defaults.has_option(section, key):
                no_default.append(f"{module}: [{section}] {key}")
    assert not direct, "read through config.option instead:\n" + "\n".join(direct)
    assert not no_default, "no default in defaults.cfg:\n" + "\n".join(no_default)
    assert checked > 50, f"only {checked} config.option calls found: the pattern no longer matches the code"
    assert DIRECT_READ.search('x = cfg["jupyter"]["root"]') and DIRECT_READ.search('self.cfg.get_int("slurm", "poll_seconds")')


def test_a_missing_service_fails_under_ci_and_skips_outside(monkeypatch):
    """README, Development: outside CI a test whose service is missing skips with a one-line
    reason; under CI=true it fails (tests/conftest.py's require)."""
    import pytest

    import conftest

    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="SLURM is required under CI=true but squeue is missing"):
        conftest.require("SLURM", False, "squeue is missing")
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="^squeue is missing$"):
        conftest.require("SLURM", False, "squeue is missing")
    conftest.require("SLURM", True, "never shown")  # a service that is there: nothing happens


def test_companions_are_found_by_backend_name_and_a_backend_without_one_gets_the_plain_one(tmp_path):
    """docs/design.md, Adding a companion: registered under miniwdl_jupyter.companions with the
    backend's name; runs_elsewhere for the cluster ones; a backend without one (miniwdl's
    singularity) gets the plain one: nothing to check, nothing to clean."""
    from miniwdl_jupyter import config
    from miniwdl_jupyter.companions import Companion, available, get_companion

    assert {"docker_run", "local", "slurm", "aws_batch"} <= set(available())
    assert [get_companion(n).runs_elsewhere for n in ("docker_run", "local", "slurm", "aws_batch")] == [False, False, True, True]
    plain = get_companion("singularity")
    cfg = config.load()
    assert type(plain) is Companion and plain.name == "singularity" and not plain.runs_elsewhere and plain.auto_rank is None
    assert plain.preflight(cfg) is None and plain.stop_leftovers(tmp_path, {}, cfg) == 0 and plain.sweep(cfg) == 0
