# ensure_venv EXTRAS: create .venv (if missing) and install the project with those extras (if changed).
# NOTE: torch is pinned to 2.13.0 in pyproject.toml: the CPU build on this machine's disk. A bare `torch`
# would download a multi-GB CUDA build.
ensure_venv() {
  local extras="$1" stamp=".venv/.installed-$1"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
  fi
}
