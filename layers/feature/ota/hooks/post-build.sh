#!/bin/sh
# feature/ota post-build: bake the trusted OTA signing keys, the revoked ones, and the board's
# compatible string into the root filesystem ($1), and install the agent's segment writer
# (ota-receive, compiled for the board's target FLEETFORGE_TARGET). The signing key pair is
# created on first use by FleetForge's one key generator (ota/keys.py; keys/ is never committed).
set -eu
target=$1
keys=${FLEETFORGE_OTA_KEYS:-${FLEETFORGE_PROJECT_DIR:-.}/keys}
"${FLEETFORGE_PYTHON:-python3}" -m ota.keys create "$keys"
mkdir -p "$target/etc/fleetforge/ota/keys"
for pub in "$keys"/*.pem; do
  cp "$pub" "$target/etc/fleetforge/ota/keys/"
done
if ls "$keys"/revoked/*.pem >/dev/null 2>&1; then
  mkdir -p "$target/etc/fleetforge/ota/keys/revoked"
  cp "$keys"/revoked/*.pem "$target/etc/fleetforge/ota/keys/revoked/"
fi
if [ -n "${FLEETFORGE_COMPATIBLE:-}" ]; then
  printf '%s\n' "$FLEETFORGE_COMPATIBLE" > "$target/etc/fleetforge/compatible"
fi
"${FLEETFORGE_PYTHON:-python3}" -m ota.receiver --target "$FLEETFORGE_TARGET" \
  --install "$target/usr/libexec/fleetforge/ota-receive"
chmod 755 "$target/usr/sbin/fleetforge-ota" "$target/etc/init.d/S97fleetforge-ota" \
  "$target/etc/init.d/S98fleetforge-pull"
