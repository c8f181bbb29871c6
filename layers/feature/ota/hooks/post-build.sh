#!/bin/sh
# feature/ota post-build: bake the trusted OTA signing keys and the board's compatible string
# into the root filesystem ($1). Creates the signing key pair on first use (keys/, not committed).
set -eu
target=$1
keys=${FLEETFORGE_OTA_KEYS:-${FLEETFORGE_PROJECT_DIR:-.}/keys}
if ! ls "$keys"/*.pem >/dev/null 2>&1; then
  echo "feature/ota: no OTA signing key in $keys; creating one (see: fleetforge ota.keygen)" >&2
  mkdir -p "$keys"; chmod 700 "$keys"
  (umask 077; openssl genpkey -algorithm ed25519 -out "$keys/ota-signing.key")
  openssl pkey -in "$keys/ota-signing.key" -pubout -out "$keys/ota-signing.pem"
fi
mkdir -p "$target/etc/fleetforge/ota/keys"
for pub in "$keys"/*.pem; do
  cp "$pub" "$target/etc/fleetforge/ota/keys/"
done
if [ -n "${FLEETFORGE_COMPATIBLE:-}" ]; then
  printf '%s\n' "$FLEETFORGE_COMPATIBLE" > "$target/etc/fleetforge/compatible"
fi
if [ -n "${FLEETFORGE_VERSION:-}" ]; then
  printf '%s\n' "$FLEETFORGE_VERSION" > "$target/etc/fleetforge/version"
fi
chmod 755 "$target/usr/sbin/fleetforge-ota" "$target/etc/init.d/S97fleetforge-ota"
