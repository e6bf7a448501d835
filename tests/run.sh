#!/usr/bin/env bash
# Airlock's whole test suite — the README's test command, and what CI runs.
#
# 1. Makes sure PostgreSQL and MariaDB answer on loopback (starting them with
#    this machine's commands if stopped, installing them from Debian packages
#    if absent — only for the default loopback URLs), and that Chromium and
#    chromedriver are installed (Debian packages) for the browser suite.
# 2. Checks formatting and lints, builds everything (benches and fuzz
#    targets are compiled, not run), and runs every workspace test.
# 3. Mutation-tests the lines of policy/ and ipc-protocol/ changed since the
#    last full measurement (tests/mutants.sh --diff, docs/assurance.md): a
#    change that adds a mutant their own tests do not catch fails here.
#
# Override the servers with AIRLOCK_TEST_POSTGRES_URL / AIRLOCK_TEST_MYSQL_URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export AIRLOCK_TEST_POSTGRES_URL="${AIRLOCK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export AIRLOCK_TEST_MYSQL_URL="${AIRLOCK_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
PG_DEFAULT="postgres://postgres@127.0.0.1:5432/postgres"
MY_DEFAULT="mysql://root@127.0.0.1:3306/test"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'tests/run.sh: %s\n' "$*" >&2; exit 1; }

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 0.5
  done
  die "$name did not start listening on 127.0.0.1:$port within 30 s"
}

apt_install() {
  [ "$(id -u)" = 0 ] || die "need root to install $* (or start the server yourself)"
  log "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if port_open 5432 && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if [ "$AIRLOCK_TEST_POSTGRES_URL" != "$PG_DEFAULT" ]; then
    port_open 5432 || die "PostgreSQL at AIRLOCK_TEST_POSTGRES_URL is not reachable; start it"
    return
  fi
  local installed_now=0
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql postgresql-client
    installed_now=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  if [ "$installed_now" = 1 ]; then
    # A fresh Debian cluster asks for passwords on TCP; the test suite, like
    # the dev machine, uses trust on loopback only.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 PostgreSQL
}

ensure_mariadb() {
  if port_open 3306; then return; fi
  if [ "$AIRLOCK_TEST_MYSQL_URL" != "$MY_DEFAULT" ]; then
    die "MariaDB/MySQL at AIRLOCK_TEST_MYSQL_URL is not reachable; start it"
  fi
  local installed_now=0
  if [ ! -x /usr/sbin/mariadbd ]; then
    apt_install mariadb-server mariadb-client
    installed_now=1
  fi
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_port 3306 MariaDB
  if [ "$installed_now" = 1 ]; then
    # Match the dev machine: root over loopback TCP with an empty password, database `test`.
    mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test;"
  fi
}

ensure_postgres
ensure_mariadb
log "PostgreSQL and MariaDB are up"
# The deploy suite verifies the systemd unit.
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
# The review_ui suite drives a real headless Chromium through chromedriver.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then return; fi
  apt_install chromium chromium-driver
}
ensure_chromium

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "building benches (not running them)"
# Compiled with the dev profile: the same code is checked, and the test
# build's artifacts are reused instead of a second, optimized (LTO) build.
cargo bench --workspace --no-run --quiet --profile dev
log "building fuzz targets"; cargo build --quiet --manifest-path ipc-protocol/fuzz/Cargo.toml
log "running every workspace test"
cargo test --workspace --no-fail-fast
log "mutation testing of policy/ and ipc-protocol/ lines changed since tests/mutants-base"
bash tests/mutants.sh --diff
