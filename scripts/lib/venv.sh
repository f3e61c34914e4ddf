# ensure_venv EXTRAS: create .venv (if missing) and install the project with those extras (if changed).
# NOTE: torch is pinned to 2.13.0 in pyproject.toml: the CPU build on this machine's disk. A bare `torch`
# would download a multi-GB CUDA build.
ensure_venv() {
  local extras="$1" stamp=".venv/.installed-$1" log=".venv/install.log"
  if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ]; then
    return
  fi
  echo "setting up .venv with the project's [$extras] packages from PyPI (first run or pyproject.toml changed; about a minute)..." >&2
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # pip's and setuptools' chatter (build banners, config warnings) goes to the log; shown only when it fails.
  if ! { .venv/bin/python -m pip install --upgrade pip &&
    .venv/bin/python -m pip install -e ".[$extras]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setting up .venv failed: the whole pip output is in $log" >&2
    return 1
  fi
  touch "$stamp"
  echo "set up .venv ($log has pip's output)" >&2
}
