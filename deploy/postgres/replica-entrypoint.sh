#!/bin/bash
# Replica: clone the primary once (pg_basebackup, streaming WAL, standby.signal), then run as a hot standby.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h postgis-primary -U replicator -D "$PGDATA" \
            -X stream -R --checkpoint=fast; do
        echo "waiting for the primary"; sleep 2; rm -rf "${PGDATA:?}"/*
    done
    chmod 700 "$PGDATA"
fi
chown -R postgres:postgres "$PGDATA"
exec gosu postgres postgres -c hot_standby=on
