#!/bin/sh
# Debian's Chromium for the browser tests (tests/ui, marker `browser`); Playwright drives
# it through executable_path, so no browser is ever downloaded by Playwright itself.
# Installs only when /usr/bin/chromium is missing; needs root (or sudo) for apt-get.
set -e
[ -x "${DESKBOT_CHROMIUM:-/usr/bin/chromium}" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
