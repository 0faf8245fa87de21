#!/usr/bin/env bash
# with-postgres.sh CMD [ARG…] — run CMD with DATABASE_URL pointing at a PostgreSQL server.
# With DATABASE_URL set, that server is used as it is. Without it, a private throwaway cluster
# is created (initdb in a temp dir, listening only on a unix socket there), used for CMD, then
# stopped and removed, whatever CMD's outcome.
set -euo pipefail

if [ -n "${DATABASE_URL:-}" ]; then
  exec "$@"
fi

bindir=""
if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
  bindir=$(pg_config --bindir)
else
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || { echo "no PostgreSQL server binaries found: run scripts/deps.sh --postgres" >&2; exit 1; }

dir=$(mktemp -d /tmp/evpg.XXXXXX)
as=()
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses to run as root: run the cluster as an unprivileged user.
  user=postgres
  if ! id "$user" >/dev/null 2>&1; then
    user=evoucher-pg
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  chown "$user" "$dir"
  as=(runuser -u "$user" --)
fi

cleanup() {
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses='' -k $dir -p 5432 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
  start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

export DATABASE_URL="postgres://postgres@/postgres?host=$dir&port=5432&sslmode=disable"
echo "private PostgreSQL cluster in $dir (removed on exit)" >&2
set +e
"$@"
rc=$?
set -e
exit $rc
