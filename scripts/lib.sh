# Shared by scripts/test and scripts/demo: install the Debian packages the stand-ins need.
need_packages() {
  local missing=()
  [ -x /usr/sbin/slapd ] || missing+=(slapd)
  command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
  if [ "${1:-}" = "--with-postgres" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
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
