#!/usr/bin/env bash
# stablectl on real CPython: Debian's python3.11 security backports as a 3.11.2-stable.
#
#   bash examples/cpython-3.11.2/run.sh [WORKDIR]        # selection, PRs, merges, releases
#   STABLECTL_CPYTHON_TESTS=1 bash examples/...run.sh     # also build CPython and run the
#                                                         # test modules each fix touches (slow)
#
# Fetches (never commits) Debian's source package python3.11 3.11.2-6+deb12u8: needs a deb-src
# entry for bookworm (`apt-get source --download-only` fails without one). Builds an upstream
# repository tagged v3.11.2 from the orig tarball, a fork with 3.11.2-stable, and a policy whose
# series takes its fixes from Debian's patch queue (the 42 `git format-patch` exports of
# upstream [3.11] commits, in Debian's series order). Then, on the local forge: sync (one PR per
# fix, stacked where fixes touch the same files), local CI, approval as `maint`, sync again,
# until every fix is merged and released; finally it compares the stable tree with the tree
# after applying the same patches in order (Debian's `quilt push -a` of them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:-$(mktemp -d /tmp/stablectl-cpython-XXXX)}"
mkdir -p "$work"
cd "$work"
stablectl="${STABLECTL:-stablectl}"
t0=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - t0 ))s)"; }

stage "fetch the Debian source package"
if [ ! -f python3.11_3.11.2.orig.tar.gz ]; then
  apt-get source --download-only python3.11=3.11.2-6+deb12u8
fi
rm -rf debian Python-3.11.2 queue up.git fork.git state
tar xJf python3.11_3.11.2-6+deb12u8.debian.tar.xz
tar xzf python3.11_3.11.2.orig.tar.gz
mkdir queue
grep -v '^#' debian/patches/series | awk 'NF {print $1}' | while read -r p; do
  if head -1 "debian/patches/$p" | grep -q '^From [0-9a-f]\{40\} '; then
    cp "debian/patches/$p" queue/ && echo "$p" >> queue/series
  fi
done
echo "$(wc -l < queue/series) upstream commits exported as format-patches"

stage "upstream v3.11.2 and the fork"
git -c init.defaultBranch=main init -q Python-3.11.2
git -C Python-3.11.2 -c safe.directory='*' add -A
git -C Python-3.11.2 -c safe.directory='*' -c user.name=PSF -c user.email=psf@python.org \
  commit -qm "Python 3.11.2"
git -C Python-3.11.2 -c safe.directory='*' tag v3.11.2
git -c safe.directory='*' clone -q --bare Python-3.11.2 up.git
git init -q --bare fork.git
git --git-dir up.git push -q fork.git 'v3.11.2^{commit}:refs/heads/3.11.2-stable'

test_command='true'
if [ "${STABLECTL_CPYTHON_TESTS:-}" = 1 ]; then
  test_command="$here/ci-test.sh"
  export CPYTHON_BUILD_DIR="$work/build"   # one incremental build tree for every PR
  rm -rf "$CPYTHON_BUILD_DIR"
fi
sed -e "s|@WORK@|$work|g" -e "s|@TEST@|$test_command|g" "$here/policy.yaml.in" > policy.yaml

export STABLECTL_STATE="$work/state" NO_COLOR=1
for round in $(seq 1 20); do
  stage "round $round: sync"
  "$stablectl" sync --policy policy.yaml --json > "sync-$round.json"
  python3 "$here/summarise.py" "sync-$round.json"
  "$stablectl" ci run --policy policy.yaml || true
  left=$(python3 "$here/approve.py" policy.yaml)
  [ "$left" = 0 ] && break
done
if [ "${STABLECTL_CPYTHON_TESTS:-}" = 1 ]; then
  stage "CPython's tests per fix"
  python3 "$here/ci_report.py" policy.yaml
fi
stage "selection by the security rules alone; prerequisites the tests asked for"
python3 "$here/rules.py" policy.yaml
stage "compare with the patches applied in order"
python3 "$here/compare.py" policy.yaml
git --git-dir fork.git tag -l 'v3.11.2.*'
find "$STABLECTL_STATE/releases/Python" -maxdepth 2 -type f | sort | head -20
stage "done in $work"
