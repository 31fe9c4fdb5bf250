#!/bin/sh
# Sets the emulator's admin password of this instance (single-user mode, before
# any connection is accepted), then becomes the server.
set -eu
if [ -n "${CLOUDSQL_ADMIN_PASSWORD:-}" ]; then
    case $CLOUDSQL_ADMIN_PASSWORD in
        *[!0-9a-zA-Z]*) echo "CLOUDSQL_ADMIN_PASSWORD must be alphanumeric" >&2; exit 1 ;;
    esac
    echo "ALTER ROLE cloudsqladmin PASSWORD '$CLOUDSQL_ADMIN_PASSWORD'" |
        postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" "$@"
