# Sourced by scripts/test and scripts/demo: make sure ./.venv exists with the launcher (and its test extra),
# the local API double (./localkube) and the demo's driver (./demo), each its own package.
# Kept idempotent and quiet so that both commands can run on a fresh machine as their first step.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
stamp="$venv/.installed-$(cat "$repo/pyproject.toml" "$repo/localkube/pyproject.toml" "$repo/demo/pyproject.toml" \
  | sha256sum | cut -c1-16)"
if [ ! -x "$venv/bin/python" ]; then
  echo "setting up $venv (first run only)..." >&2
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  echo "installing kubectl-launcher, localkube and the demo's driver into $venv..." >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -e "$repo[test]" -e "$repo/localkube" -e "$repo/demo" 2>&1 \
    | grep -v "is ignored" >&2 || true
  "$venv/bin/python" -c "import kubectl_launcher, localkube, kubectl_launcher_demo, nvflare, sh, aiohttp" \
    || { echo "error: installing the package into $venv failed (see pip output above)" >&2; exit 1; }
  rm -f "$venv"/.installed-* && touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
