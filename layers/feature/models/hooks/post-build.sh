#!/bin/sh
# feature/models post-build: cross-compile the static model runner for the board's target
# (FLEETFORGE_TARGET, from toolchains/targets.toml) and install it as /usr/bin/lowbit-run.
# FLEETFORGE_PYTHON is the interpreter running FleetForge (it has the lowbit package).
set -eu
target=$1
python=${FLEETFORGE_PYTHON:-python3}
"$python" -m lowbit.build --target "$FLEETFORGE_TARGET" --install "$target/usr/bin/lowbit-run"
chmod 755 "$target/etc/fleetforge/artifacts.d/model/check"
