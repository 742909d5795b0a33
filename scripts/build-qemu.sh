#!/bin/sh
# Configure (once) and build QEMU from the overlaid tree $1 in $2.
# Extra ninja targets (qtest binaries) may follow.
set -eu

src=$(cd "$1" && pwd)
bld=$2
shift 2

targets=${MEMEXPOSE_TARGETS:-x86_64-softmmu,aarch64-softmmu}
# Debian ships the firmware QEMU's source package leaves out; point the
# built binaries (and so qtest) at the packaged copies.
firmware=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu

opts="--target-list=$targets --disable-docs --disable-download
      --python=/usr/bin/python3 --firmwarepath=$firmware
      --disable-gtk --disable-sdl --disable-opengl --disable-spice
      --disable-xen --disable-vnc-sasl --enable-tools --disable-install-blobs"

mkdir -p "$bld"
stamp=$bld/.memexpose-configure
if [ ! -f "$bld/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$src $opts" ]; then
    echo "build-qemu: configuring $src in $bld"
    (cd "$bld" && "$src/configure" $opts) > "$bld/configure.log" 2>&1 || {
        tail -n 30 "$bld/configure.log" >&2
        echo "build-qemu: configure failed, see $bld/configure.log" >&2
        exit 1
    }
    echo "$src $opts" > "$stamp"
fi

jobs=${MEMEXPOSE_JOBS:-$(nproc)}
ninja -C "$bld" -j "$jobs" qemu-system-x86_64 qemu-system-aarch64 "$@"

# A binary run from the build tree looks for every firmware directory
# under its qemu-bundle/, so point those at the packaged firmware.
old_ifs=$IFS
IFS=:
for dir in $firmware; do
    mkdir -p "$bld/qemu-bundle$(dirname "$dir")"
    ln -sfn "$dir" "$bld/qemu-bundle$dir"
done
IFS=$old_ifs

# Blobs Debian's packages lack but its source keeps (npcm*_bootrom.bin, dtbs
# built elsewhere): link them into the bundle's data directory, searched
# last.
datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' "$bld/config-host.h")
mkdir -p "$bld/qemu-bundle$datadir"
for blob in "$src"/pc-bios/*; do
    [ -f "$blob" ] || continue
    [ -e "$bld/qemu-bundle$datadir/${blob##*/}" ] ||
        ln -s "$blob" "$bld/qemu-bundle$datadir/${blob##*/}"
done
