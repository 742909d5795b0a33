#!/bin/sh
# Guest tests: two Linux guests (TCG) linked by memexpose-pci, driven with
# memexpose.ko and memexpose-ctl.  Prints TAP, exits non-zero on failure.
#
#   tests/guest/run.sh [run-scenarios.py options, e.g. --only bulk,info]
#   tests/guest/run.sh --dma     dma.py instead: the guest drives the host's
#                                out-of-process DMA engine (contrib/examples)
#   tests/guest/run.sh --amp     the slave-boot test instead (amp.py): an
#                                x86_64 Linux master boots an aarch64 slave
#   tests/guest/run.sh --arm64   arm64-linux.py instead: x86_64 Linux with
#                                memexpose-pci and aarch64 Linux with
#                                memexpose-sysbus (Debian's arm64 kernel
#                                from scripts/arm64-guest.sh, make arm64-guest)
#
# Environment: MEMEXPOSE_QEMU_BUILD (the QEMU build directory, default
# build/qemu-10.0), MEMEXPOSE_QEMU (default its qemu-system-x86_64),
# MEMEXPOSE_KO, MEMEXPOSE_CTL (default linux-driver/...; when not given,
# linux-driver is built first if the module or the tool is missing or
# older than its sources, unless MEMEXPOSE_NO_DRIVER_BUILD=1),
# MEMEXPOSE_ACCEL (tcg; kvm only on request), MEMEXPOSE_SCENARIO_TIMEOUT
# (60 s), MEMEXPOSE_MALLOC_PERTURB (165; 0 = off: QEMU's freed memory is
# filled with this byte so that a use-after-free shows at once).
# --arm64 also: MEMEXPOSE_QEMU_AARCH64, MEMEXPOSE_ARM64_ROOT (default
# build/arm64/root), MEMEXPOSE_KO_ARM64, MEMEXPOSE_CTL_ARM64 (default
# build/arm64/driver/..., built with make -C linux-driver arm64 when not
# given, unless MEMEXPOSE_NO_DRIVER_BUILD=1).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=$top/build/guest
initrd=$out/initramfs.cpio.gz
drv=$top/linux-driver
ko=${MEMEXPOSE_KO:-$drv/memexpose.ko}
ctl=${MEMEXPOSE_CTL:-$drv/tools/memexpose-ctl}

bail() { echo "Bail out! $*"; exit 1; }

# newer_than FILE SOURCES...: true if FILE is missing or a source is newer.
newer_than() {
    f=$1
    shift
    [ -e "$f" ] || return 0
    for s in "$@"; do
        [ -n "$(find "$s" -newer "$f" 2>/dev/null)" ] && return 0
    done
    return 1
}

if [ -z "${MEMEXPOSE_KO:-}${MEMEXPOSE_CTL:-}" ] &&
   [ "${MEMEXPOSE_NO_DRIVER_BUILD:-0}" != 1 ] && [ -f "$drv/Makefile" ]; then
    srcs=$(ls "$drv"/*.c "$drv"/*.h "$drv"/Kbuild "$drv"/Makefile \
              "$drv"/include/uapi/linux/*.h 2>/dev/null || true)
    targets=
    # shellcheck disable=SC2086
    newer_than "$ko" $srcs && targets="$targets modules"
    newer_than "$ctl" "$drv/tools/memexpose-ctl.c" \
        "$drv/include/uapi/linux/memexpose.h" && targets="$targets tools"
    if [ -n "$targets" ]; then
        mkdir -p "$top/build/guest"
        echo "# building linux-driver:$targets"
        # shellcheck disable=SC2086
        make -C "$drv" $targets > "$top/build/guest/driver-build.log" 2>&1 ||
            { sed 's/^/# /' "$top/build/guest/driver-build.log" | tail -n 40
              bail "building linux-driver failed"; }
    fi
fi
export MEMEXPOSE_KO="$ko" MEMEXPOSE_CTL="$ctl"
qemu_build=${MEMEXPOSE_QEMU_BUILD:-$top/build/qemu-10.0}
export MEMEXPOSE_QEMU="${MEMEXPOSE_QEMU:-$qemu_build/qemu-system-x86_64}"
fw=${MEMEXPOSE_FW:-$top/build/firmware/memexpose-fw-aarch64.bin}
export MEMEXPOSE_FW="$fw"

[ -x "$MEMEXPOSE_QEMU" ] || bail "no QEMU at $MEMEXPOSE_QEMU (make qemu)"
[ -f "$ko" ] || bail "no driver at $ko (build linux-driver first)"
[ -x "$ctl" ] || bail "no memexpose-ctl at $ctl (build linux-driver first)"

# Rebuild the initramfs when any input is newer than it.
mkdir -p "$out"
stale=0
kimg=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1)
inputs="$ko $ctl $kimg $fw"
if [ ! -f "$initrd" ] || [ "$(cat "$initrd.inputs" 2>/dev/null)" != "$inputs" ]; then
    stale=1
else
    for f in "$ko" "$ctl" "$top/tests/guest/init" \
             "$top/tests/guest/build-initramfs.sh" ${kimg:+"$kimg"} \
             "$fw"; do
        [ -n "$(find "$f" -newer "$initrd" 2>/dev/null)" ] && stale=1
    done
fi
if [ $stale = 1 ]; then
    sh "$top/tests/guest/build-initramfs.sh" "$initrd" >"$out/build.log" 2>&1 ||
        { sed 's/^/# /' "$out/build.log"; bail "initramfs build failed"; }
    sed 's/^/# /' "$out/build.log"
    echo "$inputs" > "$initrd.inputs"
fi

if [ "${1:-}" = --dma ]; then
    shift
    exec python3 "$top/tests/guest/dma.py" --initrd "$initrd" "$@"
fi
if [ "${1:-}" = --amp ]; then
    shift
    [ -f "$fw" ] || bail "no firmware at $fw (make firmware)"
    exec python3 "$top/tests/guest/amp.py" --initrd "$initrd" "$@"
fi
if [ "${1:-}" = --arm64 ]; then
    shift
    arm64_root=${MEMEXPOSE_ARM64_ROOT:-$top/build/arm64/root}
    export MEMEXPOSE_ARM64_ROOT="$arm64_root"
    export MEMEXPOSE_QEMU_AARCH64="${MEMEXPOSE_QEMU_AARCH64:-$qemu_build/qemu-system-aarch64}"
    [ -x "$MEMEXPOSE_QEMU_AARCH64" ] ||
        bail "no QEMU at $MEMEXPOSE_QEMU_AARCH64 (make qemu)"
    akimg=$(ls "$arm64_root"/boot/vmlinuz-*-arm64 2>/dev/null | sort -V | tail -n 1)
    [ -n "$akimg" ] ||
        bail "no arm64 kernel in $arm64_root (make arm64-guest, or scripts/arm64-guest.sh as root)"
    ako=${MEMEXPOSE_KO_ARM64:-$top/build/arm64/driver/memexpose.ko}
    actl=${MEMEXPOSE_CTL_ARM64:-$top/build/arm64/driver/memexpose-ctl}
    if [ -z "${MEMEXPOSE_KO_ARM64:-}${MEMEXPOSE_CTL_ARM64:-}" ] &&
       [ "${MEMEXPOSE_NO_DRIVER_BUILD:-0}" != 1 ]; then
        # Incremental: only what changed is copied and rebuilt.
        make -C "$drv" arm64 ARM64_ROOT="$arm64_root" \
            > "$out/driver-arm64-build.log" 2>&1 ||
            { sed 's/^/# /' "$out/driver-arm64-build.log" | tail -n 40
              bail "cross-building linux-driver for arm64 failed"; }
    fi
    [ -f "$ako" ] || bail "no arm64 driver at $ako (make -C linux-driver arm64)"
    [ -x "$actl" ] || bail "no arm64 memexpose-ctl at $actl (make -C linux-driver arm64)"
    ainitrd=$out/initramfs-arm64.cpio.gz
    ainputs="$ako $actl $akimg"
    stale=0
    if [ ! -f "$ainitrd" ] ||
       [ "$(cat "$ainitrd.inputs" 2>/dev/null)" != "$ainputs" ]; then
        stale=1
    else
        for f in "$ako" "$actl" "$akimg" "$arm64_root/bin/busybox" \
                 "$top/tests/guest/init" "$top/tests/guest/build-initramfs.sh"; do
            [ -n "$(find "$f" -newer "$ainitrd" 2>/dev/null)" ] && stale=1
        done
    fi
    if [ $stale = 1 ]; then
        MEMEXPOSE_GUEST_ARCH=arm64 MEMEXPOSE_KO="$ako" MEMEXPOSE_CTL="$actl" \
            sh "$top/tests/guest/build-initramfs.sh" "$ainitrd" \
            > "$out/build-arm64.log" 2>&1 ||
            { sed 's/^/# /' "$out/build-arm64.log"; bail "arm64 initramfs build failed"; }
        sed 's/^/# /' "$out/build-arm64.log"
        echo "$ainputs" > "$ainitrd.inputs"
    fi
    exec python3 "$top/tests/guest/arm64-linux.py" --initrd "$initrd" \
        --initrd-arm64 "$ainitrd" "$@"
fi
exec python3 "$top/tests/guest/run-scenarios.py" --initrd "$initrd" "$@"
