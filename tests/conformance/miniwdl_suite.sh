#!/usr/bin/env bash
# Run miniwdl's own runtime tests against container backends and compare them with docker_swarm.
#
#   tests/conformance/miniwdl_suite.sh MINIWDL_REPO [BACKEND ...]
#
# MINIWDL_REPO: a git clone or mirror of github.com/chanzuckerberg/miniwdl (its tests are not in the
# PyPI sdist). The tests are taken from the tag matching the installed miniwdl (v$VERSION), else the
# latest v* tag; only tests/ is extracted, so `import WDL` is the installed miniwdl, which is what
# the backends run under. BACKENDS default to: docker_swarm docker_run local.
#
# Each backend's run sets only MINIWDL__SCHEDULER__CONTAINER_BACKEND (every other MINIWDL_* variable
# is removed and no miniwdl.cfg is read). Results go to $OUT (default ./miniwdl_suite_out): one
# junit XML and one log per backend, then a table of passed/failed per backend and, per backend,
# the tests whose outcome differs from docker_swarm's.
#
# Run by hand, not in CI: it takes tens of minutes per backend. Needs: Docker in swarm mode, the
# images miniwdl's tests name (with no registry reachable, set MINIWDL_SUITE_BASE_IMAGE=IMAGE to tag
# a local image under the missing names: the tests that check an image's contents then differ),
# and pytest + testfixtures in $PYTHON's environment.
# Environment: PYTHON (default: python3 on PATH), OUT, MINIWDL_SUITE_TESTS (default: the five
# runtime test files), MINIWDL_SUITE_PYTEST_ARGS (e.g. "-k TestDirectoryIO"), MINIWDL_SUITE_BASE_IMAGE,
# MINIWDL_SUITE_REPORT_ONLY=1 (only print the table from an earlier $OUT).
set -euo pipefail

repo=${1:?usage: $0 MINIWDL_REPO [BACKEND ...]}
shift
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(docker_swarm docker_run local)
python=${PYTHON:-python3}
out=$(realpath -m "${OUT:-./miniwdl_suite_out}")
tests=${MINIWDL_SUITE_TESTS:-"tests/test_4taskrun.py tests/test_5stdlib.py tests/test_6workflowrun.py tests/test_7runner.py tests/test_8cache.py"}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

version=$("$python" -c 'import importlib.metadata as m; print(m.version("miniwdl"))')
if [ -z "${MINIWDL_SUITE_REPORT_ONLY:-}" ]; then
  "$python" -c 'import pytest, testfixtures' 2>/dev/null || {
    echo "$python needs pytest and testfixtures: $python -m pip install pytest testfixtures" >&2; exit 1; }
  git_dir=$(git -C "$repo" rev-parse --git-dir 2>/dev/null) || { echo "$repo is not a git repository" >&2; exit 1; }
  case $git_dir in /*) ;; *) git_dir=$repo/$git_dir ;; esac
  tag=v$version
  if ! git --git-dir "$git_dir" rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    latest=$(git --git-dir "$git_dir" tag --list 'v*' --sort=-v:refname | grep -v rc | head -1)
    echo "no tag $tag for the installed miniwdl $version in $repo: using $latest" >&2
    tag=$latest
  fi
  checkout=$out/miniwdl-$tag
  rm -rf "$checkout" && mkdir -p "$checkout"
  git --git-dir "$git_dir" archive "$tag" tests | tar -x -C "$checkout"
  echo "$tag" >"$out/tag"

  if [ -n "${MINIWDL_SUITE_BASE_IMAGE:-}" ]; then
    for image in $(grep -ho -E '"ubuntu:[a-z0-9.]+"' "$checkout"/tests/test_[45678]*.py | tr -d '"' | sort -u); do
      docker image inspect "$image" >/dev/null 2>&1 || {
        echo "tagging $MINIWDL_SUITE_BASE_IMAGE as $image (no registry)" >&2
        docker tag "$MINIWDL_SUITE_BASE_IMAGE" "$image"; }
    done
  fi

  for backend in "${backends[@]}"; do
    echo "$(date -u +%H:%M:%S) $backend: running miniwdl $tag's runtime tests (log: $out/$backend.log)" >&2
    # shellcheck disable=SC2086 # $tests and the pytest args are word lists
    (cd "$checkout" && env $(env | grep -o '^MINIWDL[A-Z_]*' | sed 's/^/-u /') \
      MINIWDL_CFG=/nonexistent/miniwdl.cfg MINIWDL__SCHEDULER__CONTAINER_BACKEND="$backend" \
      "$python" -m pytest -p no:cacheprovider -o addopts= -q -rN --junitxml="$out/$backend.xml" \
      ${MINIWDL_SUITE_PYTEST_ARGS:-} $tests >"$out/$backend.log" 2>&1) || true
  done
fi

"$python" "$here/miniwdl_suite_report.py" "$out" "${backends[@]}"
