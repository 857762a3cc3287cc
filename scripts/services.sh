# Sourced by scripts/test and .ci/run: start (installing when absent) the servers the tests need.

log() { echo "[services] $*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install $*"; return 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2; _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$what did not come up"; return 1
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    return 0
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir /tmp --logfile /tmp/dyno-scaler-redis.log
  wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
}

pg_ready() { psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' 2>/dev/null | grep -q 1; }

ensure_postgres() {
  if command -v psql >/dev/null && pg_ready; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
  fi
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -n1)
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main start || true
  wait_for "postgres socket" su postgres -c "psql -Atc 'select 1'"
  # Trust auth on loopback and a database named test, as the tests expect.
  local hba; hba=$(su postgres -c "psql -Atc 'show hba_file'")
  if ! grep -q "dyno-scaler" "$hba"; then
    sed -i '1i # dyno-scaler tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
  fi
  su postgres -c "psql -Atc \"select 1 from pg_database where datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb test"
  wait_for "postgres on 127.0.0.1" pg_ready
}

# Drop schemas and roles left by earlier test runs (tests create dst_* schemas and roles of their own).
clean_test_leftovers() {
  psql -h 127.0.0.1 -U postgres -d test -q -v ON_ERROR_STOP=0 >/dev/null 2>&1 <<'SQL' || true
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dst\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname); END LOOP;
  FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'dst\_%' LOOP
    EXECUTE format('DROP OWNED BY %I', r.rolname); EXECUTE format('DROP ROLE %I', r.rolname); END LOOP;
END $$;
SQL
}

# Real Sidekiq 6.4 (Debian's ruby-sidekiq) for the end-to-end tests of quiet-then-drain.
ensure_sidekiq() {
  if command -v sidekiq >/dev/null && ruby -e 'require "sidekiq"' 2>/dev/null; then return 0; fi
  log "installing ruby-sidekiq"
  apt_install ruby-sidekiq
}

# Ruby's `gem` (to build and install the gem that carries the binary) and binutils' objdump (to read the highest
# GLIBC symbol version the binary needs).
ensure_gem_tools() {
  command -v gem >/dev/null || apt_install ruby
  command -v objdump >/dev/null || apt_install binutils
}

# kubectl, whose `kubectl kustomize` renders deploy/kubernetes in the end-to-end tests.
ensure_kubectl() {
  command -v kubectl >/dev/null || apt_install kubernetes-client
}

# The Prometheus project's Python client, whose OpenMetrics parser reads /metrics in the end-to-end tests.
ensure_prometheus_parser() {
  if /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then return 0; fi
  log "installing python3-prometheus-client"
  apt_install python3-prometheus-client
}

# Debian's PyYAML, which reads the deployment files under deploy/ in the end-to-end tests.
ensure_yaml_parser() {
  if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then return 0; fi
  log "installing python3-yaml"
  apt_install python3-yaml
}

# Node.js and the npm packages node-resque and playwright-core (pinned in tests/e2e/node/package-lock.json) for
# the end-to-end tests.
ensure_node_resque() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d tests/e2e/node/node_modules/node-resque ] || [ ! -d tests/e2e/node/node_modules/playwright-core ]; then
    log "installing node-resque and playwright-core"
    (cd tests/e2e/node && npm ci --no-audit --no-fund >&2)
  fi
}

# Debian's puma, which serves the Rack app with the gem's queue-time middleware in the end-to-end tests, and
# railties, in which its Railtie is checked.
ensure_puma() {
  command -v puma >/dev/null || apt_install puma
  ruby -e 'require "rails"' 2>/dev/null || apt_install ruby-railties
}

# Debian's chromium, which renders the dashboard in the end-to-end tests (driven by playwright-core).
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
}
