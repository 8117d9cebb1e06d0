#!/bin/sh
# Container entry point: `deskbot ARGS`, after bringing the database schema up to date
# when asked to (one service does it, so replicas never race on migrations).
set -eu
if [ "${DESKBOT_MIGRATE_ON_START:-0}" = "1" ]; then
    deskbot db upgrade
fi
exec deskbot "$@"
