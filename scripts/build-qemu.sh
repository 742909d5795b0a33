#!/bin/sh
# Configure (once) and build QEMU from the overlaid tree $1 in $2.
# Extra ninja targets (qtest binaries) may follow.
set -eu

# The physical path: build/qemu-src-SERIES may be a link to a user's tree.
src=$(cd "$1" && pwd -P)
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

stamp=$bld/.memexpose-configure
if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" != "$src" ]; then
    # Built from another tree before: its objects must not mix with ours.
    echo "build-qemu: $bld was built from $(cut -d' ' -f1 "$stamp"); starting afresh"
    rm -rf "$bld"
fi
mkdir -p "$bld"
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

# Boot ROMs of the BMC boards that Debian's packages for bookworm lack.
# 10.0's source keeps npcm*_bootrom.bin prebuilt in pc-bios/; 10.2's
# drops them and also needs ast27x0_bootrom.bin, so they are built from
# the tree's own roms/vbootrom, as Debian's packaging does.
vbootrom=$(cd "$bld" && pwd)/vbootrom
for rom in npcm7xx:arm-linux-gnueabi- npcm8xx:aarch64-linux-gnu- \
           ast27x0:aarch64-linux-gnu-; do
    board=${rom%%:*}
    bin=${board}_bootrom.bin
    [ -d "$src/roms/vbootrom/$board" ] && [ ! -f "$src/pc-bios/$bin" ] ||
        continue
    if [ ! -f "$vbootrom/$board/$bin" ]; then
        echo "build-qemu: building $bin from roms/vbootrom"
        [ -d "$vbootrom" ] || cp -a "$src/roms/vbootrom" "$vbootrom"
        make -s -C "$vbootrom/$board" CROSS_COMPILE="${rom#*:}" "$bin" \
            > "$bld/vbootrom-$board.log" 2>&1 || {
            tail -n 20 "$bld/vbootrom-$board.log" >&2
            echo "build-qemu: building $bin failed" >&2
            exit 1
        }
    fi
done

# Blobs Debian's packages lack but its source keeps or we built (the
# boot ROMs above, dtbs built elsewhere): link them into the bundle's data
# directory, searched last.
datadir=$(sed -n 's/^#define CONFIG_QEMU_DATADIR "\(.*\)"$/\1/p' "$bld/config-host.h")
mkdir -p "$bld/qemu-bundle$datadir"
for blob in "$src"/pc-bios/* "$vbootrom"/*/*_bootrom.bin; do
    [ -f "$blob" ] || continue
    [ -e "$bld/qemu-bundle$datadir/${blob##*/}" ] ||
        ln -s "$blob" "$bld/qemu-bundle$datadir/${blob##*/}"
done
