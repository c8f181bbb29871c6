# FleetForge A/B boot state (docs/ab-boot.md), shared by the initramfs /init and the running system.
# POSIX sh (busybox ash, dash); source it, then call the functions. The file is data, never sourced.
#   bootstate_select FILE        pick the slot to boot, count the try, print A or B
#   bootstate_mark_good FILE S   BOOT_S_LEFT=3
#   bootstate_mark_bad FILE S    BOOT_S_LEFT=0
#   bootstate_activate FILE S    BOOT_ORDER="S other", BOOT_S_LEFT=1 (one trial boot)
#   find_partition NAME          print /dev/... of partition NAME (boot, rootfs_a, rootfs_b, persist)
#   bootstate_commit FILE        FILE.tmp becomes FILE durably (fsync, rename, fsync the folder)
# On a running system with the update agent (feature/ota), mark_good, mark_bad and activate called
# from outside the agent go through the agent's lock (`fleetforge-ota bootstate`): they wait for
# its boot step, whose own decision would otherwise overwrite theirs (docs/ab-boot.md).

BOOTSTATE_TRIES=3
BOOTSTATE_AGENT=/usr/sbin/fleetforge-ota

# True when the change must be handed to the agent: it is installed and this shell does not hold
# its lock (the agent sets BOOTSTATE_LOCKED once it does).
_bootstate_outside_agent() {
    [ -z "${BOOTSTATE_LOCKED:-}" ] && [ -x "$BOOTSTATE_AGENT" ]
}

# Sets BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT. Returns 1 (and sets the defaults) when FILE is
# missing or any value is missing or invalid: a half-trusted state is treated as no state.
bootstate_read() {
    BOOT_ORDER="A B"
    BOOT_A_LEFT=$BOOTSTATE_TRIES
    BOOT_B_LEFT=$BOOTSTATE_TRIES
    [ -r "$1" ] || return 1
    _bs_order="" _bs_a="" _bs_b=""
    while IFS='=' read -r _bs_key _bs_value || [ -n "$_bs_key" ]; do
        case "$_bs_key" in
            BOOT_ORDER) _bs_order=$_bs_value ;;
            BOOT_A_LEFT) _bs_a=$_bs_value ;;
            BOOT_B_LEFT) _bs_b=$_bs_value ;;
        esac
    done < "$1"
    _bs_valid=""
    for _bs_slot in $_bs_order; do
        case "$_bs_slot" in
            A | B) case " $_bs_valid " in *" $_bs_slot "*) return 1 ;; esac
                   _bs_valid="${_bs_valid:+$_bs_valid }$_bs_slot" ;;
            *) return 1 ;;
        esac
    done
    [ -n "$_bs_valid" ] || return 1
    for _bs_count in "$_bs_a" "$_bs_b"; do
        case "$_bs_count" in
            [0-9] | [1-9][0-9]) ;;
            *) return 1 ;;
        esac
    done
    BOOT_ORDER=$_bs_valid
    BOOT_A_LEFT=$_bs_a
    BOOT_B_LEFT=$_bs_b
    return 0
}

# Atomic rewrite: a power cut leaves the old or the new file, never a mix. FILE.tmp is written,
# then bootstate_commit fsyncs it, renames it over FILE and fsyncs the folder (the rename); a
# whole-system sync only where sync takes no file (it costs as much as everything the system has
# left to write). The update agent sets BOOTSTATE_COMMIT to its own commit (one process instead
# of three); the initramfs and the init scripts use the steps here.
bootstate_commit() { # FILE
    if [ -n "${BOOTSTATE_COMMIT:-}" ]; then "$BOOTSTATE_COMMIT" "$1"; return; fi
    bootstate_commit_steps "$1"
}
bootstate_commit_steps() { # FILE: the three steps with busybox's sync and mv
    sync "$1.tmp" 2>/dev/null || sync
    mv -f "$1.tmp" "$1" || return 1
    sync "${1%/*}" 2>/dev/null || sync
}

bootstate_write() {
    printf 'BOOT_ORDER=%s\nBOOT_A_LEFT=%s\nBOOT_B_LEFT=%s\n' \
        "$BOOT_ORDER" "$BOOT_A_LEFT" "$BOOT_B_LEFT" > "$1.tmp" || return 1
    bootstate_commit "$1"
}

bootstate_select() {
    if ! bootstate_read "$1"; then
        echo "bootstate: $1 missing or unreadable, starting from defaults" >&2
    fi
    for _bs_slot in $BOOT_ORDER; do
        eval "_bs_left=\$BOOT_${_bs_slot}_LEFT"
        if [ "$_bs_left" -gt 0 ]; then
            eval "BOOT_${_bs_slot}_LEFT=$((_bs_left - 1))"
            bootstate_write "$1" || echo "bootstate: cannot write $1" >&2
            echo "$_bs_slot"
            return 0
        fi
    done
    # No slot has tries left: never leave the device unbootable.
    echo "bootstate: no slot has tries left, resetting both" >&2
    BOOT_A_LEFT=$BOOTSTATE_TRIES
    BOOT_B_LEFT=$BOOTSTATE_TRIES
    bootstate_write "$1" || echo "bootstate: cannot write $1" >&2
    set -- $BOOT_ORDER
    echo "$1"
}

_bootstate_slot() {
    case "$1" in
        A | B) return 0 ;;
        *) echo "bootstate: invalid slot '$1' (A or B)" >&2; return 2 ;;
    esac
}

bootstate_mark_good() {
    _bootstate_slot "$2" || return
    if _bootstate_outside_agent; then "$BOOTSTATE_AGENT" bootstate mark-good "$1" "$2"; return; fi
    bootstate_read "$1"
    eval "BOOT_$2_LEFT=$BOOTSTATE_TRIES"
    bootstate_write "$1"
}

bootstate_mark_bad() {
    _bootstate_slot "$2" || return
    if _bootstate_outside_agent; then "$BOOTSTATE_AGENT" bootstate mark-bad "$1" "$2"; return; fi
    bootstate_read "$1"
    eval "BOOT_$2_LEFT=0"
    bootstate_write "$1"
}

bootstate_activate() {
    _bootstate_slot "$2" || return
    if _bootstate_outside_agent; then "$BOOTSTATE_AGENT" bootstate activate "$1" "$2"; return; fi
    bootstate_read "$1"
    if [ "$2" = A ]; then BOOT_ORDER="A B"; else BOOT_ORDER="B A"; fi
    eval "BOOT_$2_LEFT=1"
    bootstate_write "$1"
}

# GPT images name their partitions; an MBR image (no names) is found by the contract's order.
# Read with the shell's own `read`: a board has dozens of block devices (loops, rams, mmcblk
# boot areas) and a process per device costs seconds under emulation.
# partition_scan reads them all once: PARTITIONS holds a line "name:NAME:DEV" per named partition
# and "num:N:DEV" per numbered one, PARTITIONS_NAMED is 1 when any has a name. partition_lookup
# then finds any number of partitions with no process (the update agent needs four).
partition_scan() {
    PARTITIONS="
" PARTITIONS_NAMED=""
    for _bs_uevent in "${SYS_BLOCK:-/sys/class/block}"/*/uevent; do
        _bs_dev="" _bs_name="" _bs_has_name="" _bs_partn=""
        while IFS='=' read -r _bs_key _bs_value; do
            case "$_bs_key" in
                DEVNAME) _bs_dev=$_bs_value ;;
                PARTNAME) _bs_name=$_bs_value _bs_has_name=1 ;;
                PARTN) _bs_partn=$_bs_value ;;
            esac
        done 2>/dev/null < "$_bs_uevent"
        [ -n "$_bs_dev" ] || continue
        if [ -n "$_bs_has_name" ]; then
            PARTITIONS_NAMED=1
            PARTITIONS="${PARTITIONS}name:$_bs_name:/dev/$_bs_dev
"
        fi
        [ -n "$_bs_partn" ] && PARTITIONS="${PARTITIONS}num:$_bs_partn:/dev/$_bs_dev
"
    done
    return 0
}

partition_lookup() { # NAME -> PARTITION, the device (from partition_scan's PARTITIONS)
    case "$1" in
        boot) _bs_n=1 ;; rootfs_a) _bs_n=2 ;; rootfs_b) _bs_n=3 ;; persist) _bs_n=4 ;; *) _bs_n= ;;
    esac
    if [ -n "$PARTITIONS_NAMED" ]; then _bs_key="name:$1:"; else _bs_key="num:$_bs_n:"; fi
    [ -n "$PARTITIONS_NAMED" ] || [ -n "$_bs_n" ] || return 1
    case "$PARTITIONS" in
        *"
$_bs_key"*) _bs_value=${PARTITIONS#*"
$_bs_key"}; PARTITION=${_bs_value%%"
"*}; return 0 ;;
    esac
    return 1
}

find_partition() { # NAME -> its device on stdout (scanned afresh: devices appear while booting)
    partition_scan
    partition_lookup "$1" && echo "$PARTITION"
}
