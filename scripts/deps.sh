#!/bin/sh
# Install with apt whatever the build and the tests need and is missing.
# Idempotent and quiet when everything is already there.
set -eu

here=$(cd "$(dirname "$0")" && pwd)

# Packages from the release itself.  The guest tests boot Debian's own
# kernel (linux-image-amd64, whatever version the archive has today) and
# build the driver against the matching linux-headers-amd64.  The aarch64
# test firmware (tests/firmware/aarch64) is built with the cross compiler;
# dtc checks the device tree node of memexpose-sysbus.  The aarch64 Linux
# guest's memexpose-ctl is linked statically against libc6-dev-arm64-cross;
# its kernel, headers and busybox come from scripts/arm64-guest.sh.  The
# BMC boards' boot ROMs that QEMU 10.2's source leaves out are built from
# its roms/vbootrom with the arm and aarch64 cross compilers
# (scripts/build-qemu.sh).  dkms builds the driver the way its users
# install it (linux-driver/dkms.conf), tested against the guest's headers.
# libvirtd (session mode, no system service) starts the libvirt test's
# domains (tests/libvirt).
base_pkgs="build-essential pkg-config ninja-build flex bison python3 python3-venv
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev dpkg-dev xz-utils
    seabios qemu-system-data ipxe-qemu clang libclang-rt-14-dev git
    linux-image-amd64 linux-headers-amd64 busybox-static cpio kmod sparse
    gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu device-tree-compiler
    libc6-dev-arm64-cross gcc-arm-linux-gnueabi libc6-dev-armel-cross dkms
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"
# QEMU 10.x needs a newer meson and pycotap than bookworm itself has.
backports_pkgs="meson python3-pycotap"

missing() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q '^install ok installed$' || echo "$p"
    done
}

meson_ok() {
    v=$(meson --version 2>/dev/null) || return 1
    [ "$(printf '%s\n1.5.0\n' "$v" | sort -V | head -n 1)" = 1.5.0 ]
}

if [ "$(id -u)" -ne 0 ]; then
    need=$(missing $base_pkgs $backports_pkgs)
    if [ -n "$need" ]; then
        echo "deps: missing packages: $need; run as root to install them" >&2
        exit 1
    fi
    exit 0
fi

sh "$here/apt-sources.sh"
export DEBIAN_FRONTEND=noninteractive

# The aarch64 Linux guest's kernel and busybox are arm64 packages that
# scripts/arm64-guest.sh downloads (never installs): dpkg must know the
# architecture.  Done here so that the one apt-get update below covers it.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "deps: dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    touch /var/lib/apt/lists/.memexpose-stale
fi
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")

need_base=$(missing $base_pkgs)
need_bpo=$(missing $backports_pkgs)
meson_ok || need_bpo="$need_bpo meson"
if [ -n "$need_base$need_bpo" ] || [ -e /var/lib/apt/lists/.memexpose-stale ]; then
    apt-get update -q
    rm -f /var/lib/apt/lists/.memexpose-stale
fi
if [ -n "$need_base" ]; then
    echo "deps: installing $need_base"
    apt-get install -y -q --no-install-recommends $need_base
fi
if [ -n "$(echo $need_bpo)" ]; then
    echo "deps: installing from $codename-backports: $need_bpo"
    apt-get install -y -q --no-install-recommends -t "$codename-backports" $need_bpo
fi
