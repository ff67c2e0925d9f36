#!/usr/bin/env bash
# irq-affinity.sh: move the IRQs of one NIC onto a list of CPUs, so that no
# NIC interrupt (and the softirq work that follows it) lands on a reactor or
# engine core.
#
#   tuning/irq-affinity.sh IFACE CPULIST [--apply]
#
#   IFACE    the network interface, e.g. eth0, ens1f0
#   CPULIST  housekeeping CPUs, e.g. 0 or 0-1,7 (never the reactors' cores)
#   --apply  write the new affinities (as root); without it, a dry run that
#            prints what it would do and changes nothing
#
# The IRQs of IFACE are the MSI/MSI-X vectors of its bus device
# (/sys/class/net/IFACE/device/msi_irqs, or the parent's for virtio), plus
# any IRQ whose action name contains IFACE (e.g. "eth0-TxRx-3").
#
# Not persistent: run it from a boot unit after the NIC is up, and stop
# irqbalance first (it would move them back), or ban the reactor cores in
# irqbalance instead (IRQBALANCE_BANNED_CPULIST). IRQs with kernel-managed
# affinity refuse the write (EIO); for those, boot with
# isolcpus=managed_irq,domain,<reactor cores>.
#
# Exit: 0 done (or would be done); 1 an IRQ could not be moved, or IFACE
# has no IRQs; 2 the command line was refused.

set -u

die_usage() {
    echo "irq-affinity.sh: $*" >&2
    echo "usage: irq-affinity.sh IFACE CPULIST [--apply]" >&2
    exit 2
}

APPLY=""
ARGS=()
for arg in "$@"; do
    case $arg in
    --apply) APPLY=1 ;;
    --dry-run) APPLY="" ;;
    -h | --help)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*) die_usage "unknown option: $arg" ;;
    *) ARGS+=("$arg") ;;
    esac
done
[ ${#ARGS[@]} -eq 2 ] || die_usage "expected IFACE and CPULIST"
IFACE=${ARGS[0]}
CPUS=${ARGS[1]}

[[ $IFACE =~ ^[A-Za-z0-9_.:@-]+$ ]] || die_usage "not an interface name: $IFACE"
[ -e "/sys/class/net/$IFACE" ] || die_usage "no interface $IFACE (see: ls /sys/class/net)"
[[ $CPUS =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]] ||
    die_usage "not a cpulist (e.g. 0 or 0-1,7): $CPUS"

# expand_cpulist "0-1,7": "0 1 7".
expand_cpulist() {
    local word lo hi out=""
    local IFS=,
    for word in $1; do
        if [[ $word =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo=${BASH_REMATCH[1]}
            hi=${BASH_REMATCH[2]}
            while [ "$lo" -le "$hi" ]; do
                out+="$lo "
                lo=$((lo + 1))
            done
        elif [[ $word =~ ^[0-9]+$ ]]; then
            out+="$word "
        fi
    done
    printf '%s\n' "${out% }"
}
# Every CPU of the list must be online, or the kernel refuses the write.
if online_raw=$(cat /sys/devices/system/cpu/online 2>/dev/null); then
    online=" $(expand_cpulist "$online_raw") "
    for cpu in $(expand_cpulist "$CPUS"); do
        case $online in *" $cpu "*) ;; *) die_usage "CPU $cpu is not online (online: $online_raw)" ;; esac
    done
fi

# The IRQs: MSI vectors of the device, then action names containing IFACE.
declare -A IRQS=()
dev=/sys/class/net/$IFACE/device
for msi in "$dev/msi_irqs" "$dev/../msi_irqs"; do
    [ -d "$msi" ] || continue
    for irq in "$msi"/*; do
        [ -e "$irq" ] && IRQS[${irq##*/}]=1
    done
    break
done
for irqdir in /proc/irq/[0-9]*; do
    [ -d "$irqdir" ] || continue
    for action in "$irqdir"/*/; do
        [ -d "$action" ] || continue
        action=${action%/}
        action=${action##*/}
        case $action in *"$IFACE"*) IRQS[${irqdir##*/}]=1 ;; esac
    done
done
if [ ${#IRQS[@]} -eq 0 ]; then
    echo "irq-affinity.sh: found no IRQs of $IFACE (a virtual interface, or no /proc/irq here)" >&2
    exit 1
fi

if [ -n "$APPLY" ] && [ "$(id -u)" != 0 ]; then
    echo "irq-affinity.sh: --apply needs root" >&2
    exit 2
fi
if pgrep -x irqbalance >/dev/null 2>&1; then
    echo "# warning: irqbalance is running and will move these IRQs again; systemctl disable --now irqbalance"
fi

mode="dry run (add --apply to change them)"
[ -n "$APPLY" ] && mode="applying"
echo "# $IFACE: ${#IRQS[@]} IRQs -> CPUs $CPUS, $mode"
failed=0
for irq in $(printf '%s\n' "${!IRQS[@]}" | sort -n); do
    name=""
    for action in /proc/irq/"$irq"/*/; do
        [ -d "$action" ] || continue
        action=${action%/}
        name=${action##*/}
    done
    file=/proc/irq/$irq/smp_affinity_list
    current=$(cat "$file" 2>/dev/null || echo "?")
    line="irq $irq ${name:-(unnamed)}: $current -> $CPUS"
    if [ "$(expand_cpulist "$current")" = "$(expand_cpulist "$CPUS")" ]; then
        echo "$line (already)"
    elif [ -z "$APPLY" ]; then
        echo "$line   # would run: echo $CPUS > $file"
    elif error=$( (echo "$CPUS" >"$file") 2>&1); then
        echo "$line (done; effective $(cat "/proc/irq/$irq/effective_affinity_list" 2>/dev/null || echo "?"))"
    else
        echo "$line FAILED: ${error##*: } (kernel-managed affinity? see the header of this script)"
        failed=1
    fi
done
exit $failed
