#!/bin/sh
# Boot selection of docs/ab-boot.md for loopback test devices: what the image's initramfs does at
# power-on (RAUC-style BOOT_ORDER / BOOT_x_LEFT). Usage: loopback_boot.sh BOOT_DIR BOOTED_SLOT_FILE
set -eu
f=$1/bootstate
BOOT_ORDER="A B"; BOOT_A_LEFT=3; BOOT_B_LEFT=3
if [ -r "$f" ]; then
  while IFS='=' read -r k v; do
    case $k in BOOT_ORDER) BOOT_ORDER=$v ;; BOOT_A_LEFT) BOOT_A_LEFT=$v ;; BOOT_B_LEFT) BOOT_B_LEFT=$v ;; esac
  done < "$f"
fi
chosen=
for s in $BOOT_ORDER; do
  eval "left=\$BOOT_${s}_LEFT"
  if [ "$left" -gt 0 ]; then
    eval "BOOT_${s}_LEFT=$((left - 1))"
    chosen=$s
    break
  fi
done
if [ -z "$chosen" ]; then
  BOOT_A_LEFT=3; BOOT_B_LEFT=3
  chosen=${BOOT_ORDER%% *}
fi
printf 'BOOT_ORDER=%s\nBOOT_A_LEFT=%s\nBOOT_B_LEFT=%s\n' "$BOOT_ORDER" "$BOOT_A_LEFT" "$BOOT_B_LEFT" > "$f.tmp"
sync; mv -f "$f.tmp" "$f"; sync
echo "$chosen" > "$2"
