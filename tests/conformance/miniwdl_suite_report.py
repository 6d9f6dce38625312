"""Table of miniwdl_suite.sh's results: passed/failed per backend, and each backend's tests whose
outcome differs from docker_swarm's (miniwdl's default backend, the reference).

    python miniwdl_suite_report.py OUT_DIR BACKEND ...
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

REFERENCE = "docker_swarm"


def outcomes(junit_xml: Path) -> Dict[str, str]:
    """test id -> passed | failed | error | skipped"""
    found = {}
    for case in ET.parse(junit_xml).iter("testcase"):
        module = case.get("classname", "").replace("tests.", "", 1)
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[f"{module}::{case.get('name')}"] = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
            kinds[0] if kinds else "", "passed"
        )
    return found


def minutes(junit_xml: Path) -> float:
    """The backend's wall time as pytest recorded it (its test suites' `time`)."""
    return sum(float(suite.get("time", 0)) for suite in ET.parse(junit_xml).iter("testsuite")) / 60


def main(out: Path, backends: List[str]) -> None:
    # the reference first, also when this run did not include it (an earlier run's result in OUT)
    ordered = [REFERENCE] + [b for b in backends if b != REFERENCE]
    results = {b: outcomes(out / f"{b}.xml") for b in ordered if (out / f"{b}.xml").is_file()}
    tag = (out / "tag").read_text().strip() if (out / "tag").is_file() else "?"
    print(f"miniwdl {tag} runtime tests\n")
    print("| backend | passed | failed | error | skipped | same outcome as docker_swarm | minutes |")
    print("|---|---|---|---|---|---|---|")
    reference = results.get(REFERENCE)
    for backend, found in results.items():
        counts = {k: sum(1 for v in found.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        same = f"{sum(1 for t, v in found.items() if reference.get(t) == v)} of {len(found)}" if reference else "-"
        took = minutes(out / f"{backend}.xml")
        print(f"| {backend} | {counts['passed']} | {counts['failed']} | {counts['error']} | {counts['skipped']} | {same} | {took:.0f} |")
    for backend, found in results.items():
        if backend == REFERENCE or reference is None:
            continue
        differences = sorted(t for t in set(found) | set(reference) if found.get(t) != reference.get(t))
        print(f"\n{backend}: {len(differences)} difference(s) from docker_swarm")
        for test in differences:
            print(f"- {test}: {backend} {found.get(test, 'absent')}, docker_swarm {reference.get(test, 'absent')}")
    missing = [b for b in backends if b not in results]
    if missing:
        print(f"\nno results for: {', '.join(missing)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
