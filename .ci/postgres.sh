# A throwaway PostgreSQL cluster for the tests, on a loopback port, in a
# directory of its own. Source this file, then:
#
#   pg_start DIR   install PostgreSQL from Debian's packages if missing,
#                  initialise a cluster in DIR and start it; sets
#                  LIVEHOOK_TEST_POSTGRES (a DSN with a password) and PG_PID
#   pg_stop DIR    stop the server by its pid and delete DIR
#
# The server refuses to run as root, so as root it runs as the postgres
# user that Debian's package creates.

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true
}

pg_install() {
  [ -n "$(pg_bindir)" ] && return 0
  echo "installing postgresql from Debian's packages" >&2
  # Debian's postinst would start a cluster of its own: tell it not to.
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
  fi
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  local rc=$?
  [ -n "$made" ] && rm -f "$policy"
  return $rc
}

# pg_as runs a command as the cluster's owner.
pg_as() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  local dir=$1
  pg_install || return 1
  local bin
  bin=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  local pw
  pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$pw" >"$dir/pw"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/pw"
  chmod 600 "$dir/pw"
  pg_as "$bin/initdb" -D "$dir/data" -U livehook --pwfile="$dir/pw" -E UTF8 --locale=C.UTF-8 \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; return 1; }
  rm -f "$dir/pw"
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 40000))
    if pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200" \
      start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    if [ $tries -ge 5 ]; then
      cat "$dir/server.log" >&2; return 1
    fi
  done
  PG_PID=$(head -n 1 "$dir/data/postmaster.pid")
  PGPASSWORD=$pw "$bin/psql" -q -h 127.0.0.1 -p "$port" -U livehook -d postgres \
    -c 'CREATE DATABASE livehook_test' >&2 || return 1
  export LIVEHOOK_TEST_POSTGRES="postgres://livehook:$pw@127.0.0.1:$port/livehook_test?sslmode=disable"
  export PG_PID
  echo "postgres $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (pid $PG_PID)" >&2
}

pg_stop() {
  local dir=$1 pid=${PG_PID:-}
  if [ -z "$pid" ] && [ -f "$dir/data/postmaster.pid" ]; then
    pid=$(head -n 1 "$dir/data/postmaster.pid")
  fi
  if [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; then
    # Fast shutdown: wait for the postmaster to go, by its pid.
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
