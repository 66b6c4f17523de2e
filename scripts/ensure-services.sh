#!/usr/bin/env bash
# Make sure the PostgreSQL and MariaDB servers the tests use are running; start (or
# install, on a bare Debian machine) them if not; and that Debian's nginx is installed (the
# replica tests start their own, in front of two panels). Tests never skip for a missing one.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | head -n1)
  sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432
  # The tests connect as postgres without a password over TCP (trust auth) to database "test".
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
}

ensure_mariadb() {
  if mysqladmin ping -h 127.0.0.1 -u root --silent 2>/dev/null; then return; fi
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  sudo_if_needed start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do mysqladmin ping -h 127.0.0.1 -u root --silent 2>/dev/null && break; sleep 0.5; done
  mysqladmin ping -h 127.0.0.1 -u root
  mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test"
}

ensure_nginx() {
  if [ -x /usr/sbin/nginx ]; then return; fi
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
  test -x /usr/sbin/nginx
}

# Process isolation (PLUGDOCK_ISOLATION=process) confines plugins with Debian's bubblewrap, and
# builds their seccomp filter with libseccomp (pyseccomp loads libseccomp.so.2).
ensure_bubblewrap() {
  if command -v bwrap >/dev/null && ldconfig -p | grep -q 'libseccomp\.so\.2 '; then return; fi
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2 >/dev/null
  command -v bwrap >/dev/null
}

ensure_postgres
ensure_mariadb
ensure_nginx
ensure_bubblewrap
echo "services: PostgreSQL and MariaDB are up; nginx and bubblewrap are installed"
