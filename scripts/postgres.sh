# Sourced by scripts/test.sh and bench/run.sh: starts a throwaway PostgreSQL cluster on a free
# loopback port, sets `postgres_url` to it, and stops and removes it when the shell exits.
# `postgres_pin`, when set, is a command prefix for the server (e.g. `taskset -c 1`).
# Needs `as_root` and the PostgreSQL server binaries (apt `postgresql`).

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/speechgate-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$pg_dir" postgres
  chown postgres "$pg_dir"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
stop_pg() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
trap stop_pg EXIT

echo speechgate > "$pg_dir/pw"
chmod 644 "$pg_dir/pw"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U speechgate --pwfile="$pg_dir/pw" --auth=scram-sha-256 >/dev/null
# shellcheck disable=SC2086 # postgres_pin is a command prefix, split on purpose
as_pg ${postgres_pin:-} "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_dir -c max_connections=300 -c fsync=off" \
  start >/dev/null
postgres_url="postgres://speechgate:speechgate@127.0.0.1:$pg_port/postgres"
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
