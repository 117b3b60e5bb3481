#!/bin/sh
# Install the Debian 12 packages ringmq needs to build, run and test.
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    gcc libc6-dev pkg-config meson ninja-build \
    liburing-dev libwolfssl-dev libxxhash-dev libcriterion-dev libinih-dev \
    libmicrohttpd-dev libssl-dev libcurl4-openssl-dev libjansson-dev libhttp-parser-dev \
    libmosquitto-dev mosquitto-clients openssl clang-format jq iproute2 >/dev/null
# Node and npm for the MQTT.js tests (tests/e2e/node), unless a node is
# installed already (Debian's npm would conflict with another vendor's node).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
