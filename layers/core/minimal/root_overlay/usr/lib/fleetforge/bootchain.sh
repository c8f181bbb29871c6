# FleetForge boot chain (docs/ab-boot.md): pick a slot with bootstate.sh, refuse it unless its
# content matches its dm-verity root hash, boot it; fall back to the other slot within the same
# power-on. POSIX sh; sourced (after bootstate.sh) by the initramfs /init, the root filesystem's
# watchdog script and the update agent.
#   bootchain_choose BOOTDIR                 select, verify and boot a slot; returns 1 only when no
#                                            slot can boot (each slot is tried once per power-on)
#   bootchain_record BOOTDIR SLOT            print the slot's verity record (checked), or fail
#   bootchain_set_record BOOTDIR SLOT REC    store a slot's verity record atomically
#   bootchain_valid_record RECORD            whether RECORD is a well-formed verity record
#   bootchain_cmdline_arg NAME               the value of NAME=VALUE on the kernel command line
#   bootchain_watchdog_timeout [FILE]        seconds the watchdog gives a boot (0 = no watchdog):
#                                            FILE's number (a slot's watchdog-timeout), else
#                                            fleetforge.watchdog= on the command line, else 120
# bootchain_choose needs two functions from its caller, the hardware steps:
#   chain_verify SLOT RECORD   0 when the whole slot matches RECORD (dm-verity, every block read),
#                              1 when it does not, 2 when dm-verity cannot be set up at all
#   chain_boot SLOT RECORD     boot the verified slot; returns only when it cannot, with the
#                              reason in CHAIN_REASON
#
# A verity record is the dm-verity target's own parameters after its two devices, one line:
#   VERSION DATA_BLOCK_SIZE HASH_BLOCK_SIZE DATA_BLOCKS HASH_START_BLOCK ALGORITHM ROOT_HASH SALT
# The signed update manifest carries it (`verity ...`); the build and the update agent store it on
# the boot partition as slot-A.verity / slot-B.verity, and the chooser puts it on the kernel
# command line of the slot it boots (fleetforge.verity=, commas for spaces).

BOOTCHAIN_WATCHDOG_TIMEOUT=120  # seconds from arming (initramfs) to the boot's commit decision

bootchain_cmdline_arg() { # NAME
    for _bc_word in $(cat /proc/cmdline); do
        case $_bc_word in "$1="*) echo "${_bc_word#*=}"; return 0 ;; esac
    done
    return 1
}

bootchain_watchdog_timeout() { # [FILE]
    _bc_t=""
    [ -n "${1:-}" ] && read -r _bc_t < "$1" 2>/dev/null
    case $_bc_t in '' | *[!0-9]*) _bc_t=$(bootchain_cmdline_arg fleetforge.watchdog) ;; esac
    case $_bc_t in '' | *[!0-9]*) _bc_t=$BOOTCHAIN_WATCHDOG_TIMEOUT ;; esac
    echo "$_bc_t"
}

bootchain_valid_record() { # RECORD: nothing in it may reach dmsetup unless it is this shape
    case $1 in '' | *[!0-9a-z\ -]*) return 1 ;; esac
    set -- $1
    [ $# -eq 8 ] && [ "$1" = 1 ] && [ "$6" = sha256 ] || return 1
    for _bc_n in "$4" "$5"; do
        case $_bc_n in '' | *[!0-9]*) return 1 ;; esac
    done
    [ "$2" = 4096 ] && [ "$3" = 4096 ] && [ "$4" -gt 0 ] || return 1
    case $7 in *[!0-9a-f]*) return 1 ;; esac
    [ ${#7} -eq 64 ] || return 1
    case $8 in -) ;; *[!0-9a-f]*) return 1 ;; esac
}

bootchain_record() { # BOOTDIR SLOT
    _bc_line=""
    read -r _bc_line < "$1/slot-$2.verity" 2>/dev/null || [ -n "$_bc_line" ] || return 1
    bootchain_valid_record "$_bc_line" || return 1
    echo "$_bc_line"
}

bootchain_set_record() { # BOOTDIR SLOT RECORD (bootstate.sh's commit: old or new, never a mix)
    bootchain_valid_record "$3" || { echo "bootchain: malformed verity record '$3'" >&2; return 2; }
    echo "$3" > "$1/slot-$2.verity.tmp" || return 1
    bootstate_commit "$1/slot-$2.verity"
}

bootchain_refuse() { # BOOTDIR SLOT REASON: this power-on will not boot SLOT; it stops being bootable
    echo "FLEETFORGE_SLOT_REFUSED slot=$2: $3"
    bootstate_mark_bad "$1/bootstate" "$2" || echo "bootchain: cannot mark slot $2 bad" >&2
}

bootchain_choose() { # BOOTDIR
    _bc_tried=" "
    while :; do
        _bc_slot=$(bootstate_select "$1/bootstate")
        case $_bc_tried in *" $_bc_slot "*) return 1 ;; esac
        _bc_tried="$_bc_tried$_bc_slot "
        if ! _bc_rec=$(bootchain_record "$1" "$_bc_slot"); then
            bootchain_refuse "$1" "$_bc_slot" "no valid verity record (slot-$_bc_slot.verity)"
        else
            chain_verify "$_bc_slot" "$_bc_rec"
            case $? in
                0)  CHAIN_REASON="it could not be started"
                    chain_boot "$_bc_slot" "$_bc_rec"
                    bootchain_refuse "$1" "$_bc_slot" "$CHAIN_REASON" ;;
                2)  bootchain_refuse "$1" "$_bc_slot" "cannot be checked: dm-verity could not be set up (does the kernel have DM_VERITY and CRYPTO_SHA256? see dmesg)" ;;
                *)  bootchain_refuse "$1" "$_bc_slot" "content does not match its verity root hash" ;;
            esac
        fi
    done
}
