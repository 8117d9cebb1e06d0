#!/bin/sh
# The nightly job for containers (no cron daemon as a non-root user): sleep until
# DESKBOT_RETRAIN_AT (UTC, HH:MM), run `deskbot retrain`, repeat. The job takes a lock
# and is idempotent, so a restart at the wrong moment costs nothing.
# DESKBOT_RETRAIN_AT=now runs one night at once and exits with its status (by hand, tests).
set -u
at="${DESKBOT_RETRAIN_AT:-02:00}"
if [ "$at" = "now" ]; then
    exec deskbot retrain
fi
while :; do
    now=$(date -u +%s)
    next=$(date -u -d "today $at" +%s)
    [ "$next" -le "$now" ] && next=$(date -u -d "tomorrow $at" +%s)
    sleep $((next - now))
    deskbot retrain || echo "deskbot retrain failed with status $? (the live model is unchanged)" >&2
done
