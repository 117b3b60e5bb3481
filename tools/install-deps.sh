#!/bin/sh
# Install the Debian 12 packages ringmq needs to build, run and test.
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    gcc libc6-dev pkg-config meson ninja-build \
    liburing-dev libwolfssl-dev libxxhash-dev libcriterion-dev libinih-dev \
    libmicrohttpd-dev libcurl4-openssl-dev \
    libmosquitto-dev mosquitto-clients openssl clang-format jq iproute2 >/dev/null
