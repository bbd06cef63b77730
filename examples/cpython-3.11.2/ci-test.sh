#!/usr/bin/env bash
# The local CI's test command: build CPython and run the test modules the PR's commits touch.
#
# Runs in the PR's fresh checkout. With CPYTHON_BUILD_DIR set (run.sh sets it), the build
# happens in that persistent tree instead, moved to the PR head with `git checkout`, which
# touches only the files that differ, so `make` rebuilds only what the fix changed: one full
# build for the whole queue instead of one per PR.
set -euo pipefail
head="$(git rev-parse HEAD)"
base="$(git merge-base HEAD "origin/$STABLECTL_BASE" 2>/dev/null || git rev-parse HEAD~1)"
# The test modules of what the PR touches: Lib/test/test_X*, Lib/X(.py|/) -> test_X,
# Modules/[_]X[module].c -> test_X, Objects/Xobject.c -> test_X (those that exist); a fix
# that touches none of them gets a smoke set.
tests=$(git diff --name-only "$base" HEAD | sed -n \
  -e 's#^Lib/test/\(test_[a-z0-9_]*\)\(\.py\|/.*\)$#\1#p' \
  -e 's#^Lib/\([a-z0-9_]*\)\(\.py\|/.*\)$#test_\1#p' \
  -e 's#^Modules/_\{0,1\}\([a-z0-9]*\)module\.c$#test_\1#p' \
  -e 's#^Modules/_\{0,1\}\([a-z0-9]*\)\.c$#test_\1#p' \
  -e 's#^Objects/\([a-z]*\)object\.c$#test_\1#p' | sort -u |
  while read -r t; do if [ -e "Lib/test/$t.py" ] || [ -d "Lib/test/$t" ]; then echo "$t"; fi; done |
  tr '\n' ' ')
[ -n "$tests" ] || tests="test_sys test_os test_threading"
if [ -n "${CPYTHON_BUILD_DIR:-}" ]; then
  src="$PWD"
  [ -d "$CPYTHON_BUILD_DIR/.git" ] || git clone -q --no-checkout "$src" "$CPYTHON_BUILD_DIR"
  cd "$CPYTHON_BUILD_DIR"
  git fetch -q "$src" "$head"
  git checkout -q -f --detach "$head"
fi
t0=$(date +%s)
[ -f Makefile ] || ./configure -q --with-pydebug > /dev/null
make -s -j"$(getconf _NPROCESSORS_ONLN)" > make.log 2>make.err || { cat make.err; exit 1; }
echo "build: $(( $(date +%s) - t0 ))s"
# CPython's build reports extension modules it could not build and goes on (the old module
# stays in the build tree): a module the PR touches must have built.
failed=$(cat make.log make.err | sed -n '/^Failed to build these modules:/,/^$/p' | tail -n +2 | tr -s ' \n' ' ')
for src in $(git diff --name-only "$base" "$head" -- 'Modules/*.c'); do
  mod=$(basename "$src" .c | sed -e 's/^_//' -e 's/module$//')
  for f in $failed; do
    if [ "${f#_}" = "$mod" ]; then
      echo "the PR changes $src but module $f failed to build:"
      grep -B2 -A3 'error' make.err | head -40
      exit 1
    fi
  done
done
echo "tests: $tests"
# shellcheck disable=SC2086
./python -m test -j2 --fail-env-changed -W $tests
