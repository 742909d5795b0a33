#!/bin/sh
# Build QEMU's fuzzer binary with clang, ASan and UBSan from the overlaid
# tree $1 in $2, then run the memexpose-peer target for $3 seconds on a
# working copy of the committed corpus in $4 (seeded from
# tests/fuzz/corpus/device).  Further libFuzzer options may follow, e.g.
# -fork=2 for two fuzzing processes.  See docs/fuzzing.md.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "$1" && pwd -P)
bld=$2
seconds=$3
work=$4
shift 4

firmware=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
opts="--cc=clang --cxx=clang++ --target-list=x86_64-softmmu
      --enable-fuzzing --enable-asan --enable-ubsan --disable-docs --disable-tools
      --disable-download --python=/usr/bin/python3 --disable-gtk
      --disable-sdl --disable-opengl --disable-spice --disable-xen
      --disable-vnc-sasl --disable-install-blobs
      --firmwarepath=$firmware"

stamp=$bld/.memexpose-configure
mkdir -p "$bld"
if [ ! -f "$bld/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$src $opts" ]; then
    echo "fuzz-device: configuring $src in $bld (clang, fuzzing, sanitizers)"
    (cd "$bld" && "$src/configure" $opts) > "$bld/configure.log" 2>&1 || {
        tail -n 30 "$bld/configure.log" >&2
        echo "fuzz-device: configure failed, see $bld/configure.log" >&2
        exit 1
    }
    echo "$src $opts" > "$stamp"
fi
ninja -C "$bld" -j "${MEMEXPOSE_JOBS:-$(nproc)}" qemu-fuzz-x86_64
# As in build-qemu.sh: the binary finds the packaged firmware here.
old_ifs=$IFS
IFS=:
for dir in $firmware; do
    mkdir -p "$bld/qemu-bundle$(dirname "$dir")"
    ln -sfn "$dir" "$bld/qemu-bundle$dir"
done
IFS=$old_ifs

mkdir -p "$work"
cp -n "$top"/tests/fuzz/corpus/device/* "$work"/ 2>/dev/null || true
# Leaks are reported at exit by the guest-side objects QEMU never frees;
# they are not what this target looks for.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1} \
    "$bld/qemu-fuzz-x86_64" --fuzz-target=memexpose-peer \
    -max_len=4096 -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$work/../" "$@" "$work"
