#!/bin/sh
# Build the guest initramfs for the memexpose guest tests.
#
#   tests/guest/build-initramfs.sh OUT.cpio.gz
#
# Contents: busybox-static with its applet links, memexpose.ko (and any
# module it depends on, from /lib/modules/<ver>), memexpose-ctl, and an
# /init that runs a command loop on the console (ttyS0, ttyAMA0) for
# tests/guest/harness.py.
#
# Environment:
#   MEMEXPOSE_GUEST_ARCH  amd64 (default): the host's Debian kernel and
#                     busybox; arm64: everything for the aarch64 guest from
#                     MEMEXPOSE_ARM64_ROOT (default build/arm64/root, see
#                     scripts/arm64-guest.sh), driver and tool from
#                     build/arm64/driver (make -C linux-driver arm64)
#   MEMEXPOSE_KO      the driver      (default linux-driver/memexpose.ko)
#   MEMEXPOSE_CTL     the user tool   (default linux-driver/tools/memexpose-ctl)
#   MEMEXPOSE_KVER    kernel version  (default: the newest /boot/vmlinuz-*-amd64,
#                     or for arm64 the newest boot/vmlinuz-*-arm64 in the root)
#   MEMEXPOSE_FW      aarch64 test firmware, copied to /memexpose-fw-aarch64.bin
#                     when it exists (default build/firmware/memexpose-fw-aarch64.bin;
#                     amd64 only: the x86_64 guest is the boot master)
#   MEMEXPOSE_ALLOW_NO_DRIVER=1   build without driver/tool (boot tests only)
#
# Prints the kernel image to use as the last line: "kernel: /boot/vmlinuz-..."
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: $0 OUT.cpio.gz}
arch=${MEMEXPOSE_GUEST_ARCH:-amd64}
case "$arch" in
amd64)
    # The host's own Debian kernel, modules and busybox-static.
    sysroot=
    ko=${MEMEXPOSE_KO:-$top/linux-driver/memexpose.ko}
    ctl=${MEMEXPOSE_CTL:-$top/linux-driver/tools/memexpose-ctl}
    fw=${MEMEXPOSE_FW:-$top/build/firmware/memexpose-fw-aarch64.bin}
    elf_machine=x86-64
    ;;
arm64)
    # Unpacked, not installed: scripts/arm64-guest.sh.
    sysroot=${MEMEXPOSE_ARM64_ROOT:-$top/build/arm64/root}
    ko=${MEMEXPOSE_KO:-$top/build/arm64/driver/memexpose.ko}
    ctl=${MEMEXPOSE_CTL:-$top/build/arm64/driver/memexpose-ctl}
    fw=
    elf_machine=aarch64
    ;;
*)
    echo "build-initramfs: MEMEXPOSE_GUEST_ARCH must be amd64 or arm64, not $arch" >&2
    exit 1 ;;
esac

die() { echo "build-initramfs: $*" >&2; exit 1; }

# The kernel: newest Debian image of the architecture; headers must match.
if [ -n "${MEMEXPOSE_KVER:-}" ]; then
    kver=$MEMEXPOSE_KVER
else
    kimg=$(ls "$sysroot"/boot/vmlinuz-*-"$arch" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$kimg" ] || {
        [ "$arch" = amd64 ] && die "no /boot/vmlinuz-*-amd64 (apt-get install linux-image-amd64)"
        die "no $sysroot/boot/vmlinuz-*-arm64 (scripts/arm64-guest.sh)"; }
    kver=${kimg#"$sysroot"/boot/vmlinuz-}
fi
kimg=$sysroot/boot/vmlinuz-$kver
[ -r "$kimg" ] || die "$kimg is missing or unreadable"
[ -d "$sysroot/lib/modules/$kver" ] || die "$sysroot/lib/modules/$kver is missing"
if [ ! -d "$sysroot/usr/src/linux-headers-$kver" ] &&
   [ ! -e "$sysroot/lib/modules/$kver/build" ]; then
    echo "build-initramfs: warning: no headers for $kver (linux-headers-$arch)" >&2
fi

if [ "$arch" = amd64 ]; then
    busybox=$(command -v busybox || true)
    [ -n "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
else
    busybox=$sysroot/bin/busybox
    [ -f "$busybox" ] || die "no $busybox (scripts/arm64-guest.sh)"
fi
if file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked'; then
    die "$busybox is dynamically linked (apt-get install busybox-static)"
fi
command -v cpio >/dev/null || die "cpio not found"

have_driver=1
have_ctl=1
if [ ! -f "$ko" ] || [ ! -f "$ctl" ]; then
    [ "${MEMEXPOSE_ALLOW_NO_DRIVER:-0}" = 1 ] ||
        die "driver or tool missing: $ko, $ctl (build linux-driver first)"
    [ -f "$ko" ] || have_driver=0
    [ -f "$ctl" ] || have_ctl=0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/bin" "$stage/sbin" "$stage/usr/bin" "$stage/usr/sbin" \
         "$stage/proc" "$stage/sys" "$stage/dev" "$stage/tmp" "$stage/run" \
         "$stage/root" "$stage/etc" "$stage/lib/modules/$kver/extra"
cp "$busybox" "$stage/bin/busybox"
chmod 755 "$stage/bin/busybox"
if [ "$arch" = amd64 ]; then
    "$busybox" --list-full | while read -r applet; do
        [ "$applet" = bin/busybox ] && continue
        [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
    done
else
    # A foreign busybox cannot list its applets here: /bin/sh is enough
    # to start /init, which runs "busybox --install -s" first.
    ln -s /bin/busybox "$stage/bin/sh"
fi
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true
echo "root:x:0:0:root:/root:/bin/sh" > "$stage/etc/passwd"
echo "root:x:0:" > "$stage/etc/group"

# Modules: memexpose.ko at / (the tests insmod /memexpose.ko), plus what
# it depends on, loaded in dependency order by /init (/etc/mx-modules).
: > "$stage/etc/mx-modules"
if [ $have_driver = 1 ]; then
    vermagic=$(modinfo -F vermagic "$ko") || die "modinfo failed on $ko"
    case "$vermagic" in
        "$kver "*) ;;
        *) die "$ko was built for '${vermagic%% *}', the kernel is $kver" ;;
    esac
    cp "$ko" "$stage/memexpose.ko"

    # Dependencies before dependants, each once, as modprobe would load
    # them (modules.dep of the kernel's tree; builtins are left out).
    deps=$(for m in $(modinfo -F depends "$ko" | tr ',' ' '); do
               modprobe ${sysroot:+-d "$sysroot"} -S "$kver" \
                   --show-depends "$m" || exit 1
           done) || die "cannot resolve the modules $ko depends on"
    echo "$deps" | sed -n 's/^insmod \([^ ]*\).*/\1/p' | awk '!seen[$0]++' |
    while read -r f; do
        cp "$f" "$stage/lib/modules/$kver/extra/"
        echo "/lib/modules/$kver/extra/$(basename "$f")" >> "$stage/etc/mx-modules"
    done
fi

if [ $have_ctl = 1 ]; then
    if file -L "$ctl" 2>/dev/null | grep -q 'dynamically linked'; then
        die "$ctl is dynamically linked; the initramfs has no libc"
    fi
    if command -v file >/dev/null &&
       ! file -L "$ctl" | grep -q -i "$elf_machine"; then
        die "$ctl is not an $elf_machine executable: $(file -L "$ctl")"
    fi
    cp "$ctl" "$stage/bin/memexpose-ctl"
    chmod 755 "$stage/bin/memexpose-ctl"
fi

# For the slave-boot test: the master loads it into the slave's RAM.
[ -n "$fw" ] && [ -f "$fw" ] && cp "$fw" "$stage/memexpose-fw-aarch64.bin"

cp "$top/tests/guest/init" "$stage/init"
chmod 755 "$stage/init"
echo "$kver" > "$stage/etc/mx-kernel"

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -6 > "$out.tmp"
mv "$out.tmp" "$out"
echo "initramfs: $out ($(wc -c < "$out") bytes, driver: $([ $have_driver = 1 ] && echo yes || echo no), tool: $([ $have_ctl = 1 ] && echo yes || echo no), modules: $(wc -l < "$stage/etc/mx-modules") extra)"
echo "kernel: $kimg"
