#!/bin/sh
# core/minimal post-build: links into the writable /run (the root filesystem is read-only).
set -e
target="$1"
ln -sf ../run/resolv.conf "$target/etc/resolv.conf"
ln -sf ../proc/self/mounts "$target/etc/mtab"
