# Shared by scripts/test and scripts/demo: install the Debian packages the stand-ins need.
need_packages() {
  local missing=()
  [ -x /usr/sbin/slapd ] || missing+=(slapd)
  command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
  if [ "${1:-}" = "--with-postgres" ]; then   # the test suite's own tools (scripts/test)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    [ -x /usr/bin/systemd-analyze ] || missing+=(systemd)   # deploy_files.rs: verify the unit
    # completions.rs parses the zsh and fish scripts and renders the man page
    command -v zsh >/dev/null 2>&1 || missing+=(zsh)
    command -v fish >/dev/null 2>&1 || missing+=(fish)
    command -v groff >/dev/null 2>&1 || missing+=(groff-base)
    command -v man >/dev/null 2>&1 || missing+=(man-db)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${missing[*]} (apt)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Installs the node packages of tests/github (Prism, GitHub's OpenAPI description and GraphQL
# schema) with npm ci when node_modules is missing or older than the lock file.
need_node_packages() {
  local dir=tests/github
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install Node.js 20+ to run the GitHub connector tests (Prism)" >&2
    return 1
  fi
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "installing the node packages of $dir (npm ci)" >&2
    npm ci --prefix "$dir" --no-audit --no-fund >/dev/null
    touch "$dir/node_modules"
  fi
}

# Creates the Python venv of tests/python (moto_server for the AWS connector tests) and installs
# requirements.txt into it when the venv is missing or requirements.txt is newer than its stamp.
need_python_packages() {
  local dir=tests/python
  local venv="$dir/.venv"
  local stamp="$venv/.requirements-installed"
  if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 not found: install Python 3.9+ to run the AWS connector tests (moto)" >&2
    return 1
  fi
  if [ ! -x "$venv/bin/pip" ]; then
    # Debian's python3 has no ensurepip (so no `-m venv`) without the python3-venv package.
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      echo "installing python3-venv (apt)" >&2
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  if [ ! -e "$stamp" ] || [ "$dir/requirements.txt" -nt "$stamp" ]; then
    echo "installing the python packages of $dir (pip install -r requirements.txt)" >&2
    "$venv/bin/pip" install -q -r "$dir/requirements.txt"
    touch "$stamp"
  fi
  # Canaille (a second real SCIM server) in a venv of its own: it needs older scim2 packages
  # than scim2-server's.
  local cdir="$dir/canaille"
  local cvenv="$cdir/.venv"
  local cstamp="$cvenv/.requirements-installed"
  if [ ! -x "$cvenv/bin/pip" ]; then
    rm -rf "$cvenv"
    python3 -m venv "$cvenv"
  fi
  if [ ! -e "$cstamp" ] || [ "$cdir/requirements.txt" -nt "$cstamp" ]; then
    echo "installing the python packages of $cdir (pip install -r requirements.txt)" >&2
    "$cvenv/bin/pip" install -q -r "$cdir/requirements.txt"
    touch "$cstamp"
  fi
  # The official Kubernetes Python client in a venv of its own: it needs python-dateutil>=3,
  # which botocore (moto) refuses.
  local kdir=tests/kubernetes
  local kvenv="$kdir/.venv"
  local kstamp="$kvenv/.requirements-installed"
  if [ ! -x "$kvenv/bin/pip" ]; then
    rm -rf "$kvenv"
    python3 -m venv "$kvenv"
  fi
  if [ ! -e "$kstamp" ] || [ "$kdir/requirements.txt" -nt "$kstamp" ]; then
    echo "installing the python packages of $kdir (pip install -r requirements.txt)" >&2
    "$kvenv/bin/pip" install -q -r "$kdir/requirements.txt"
    touch "$kstamp"
  fi
}

# The console's browser test (crates/daemon/tests/console.rs): Debian's chromium (apt) and
# playwright-core in tests/browser (npm ci; it downloads no browser of its own).
need_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing chromium (apt)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  local dir=tests/browser
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "installing the node packages of $dir (npm ci)" >&2
    npm ci --prefix "$dir" --no-audit --no-fund >/dev/null
    touch "$dir/node_modules"
  fi
}
