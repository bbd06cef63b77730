#!/usr/bin/env bash
# The local CI's test command: build CPython and run the test modules the PR's commits touch.
set -euo pipefail
./configure -q --with-pydebug > /dev/null
make -s -j"$(getconf _NPROCESSORS_ONLN)" > /dev/null
base="$(git merge-base HEAD "origin/$STABLECTL_BASE" 2>/dev/null || git rev-parse HEAD~1)"
tests=$(git diff --name-only "$base" HEAD | sed -n 's|^Lib/test/\(test_[a-z0-9_]*\)\(\.py\|/.*\)$|\1|p' | sort -u)
echo "tests: ${tests:-none}"
[ -z "$tests" ] && exit 0
# shellcheck disable=SC2086
./python -m test -j2 --fail-env-changed $tests
