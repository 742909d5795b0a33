#!/bin/sh
# `make bench`: build the bench's guest pieces and run bench/run-bench.py.
#
#   bench/run.sh [run-bench.py options]
#
# Needs QEMU and ivshmem-server built (make qemu) and linux-driver built
# (make driver); builds mxbench (static), the ivshmem-bench module and the
# bench initramfs into build/bench/, installs gnuplot-nox with apt if
# gnuplot is missing (for the plot; without it the bench runs and says
# so), then boots the two guests and measures.  Results:
# build/bench/results.md (+ results.json, results.png); logs, serial
# consoles and sockets in build/bench/work/.
#
# Environment: MEMEXPOSE_QEMU_BUILD (the QEMU build, default
# build/qemu-10.0; make bench QEMU_VERSION=10.2 sets it), MEMEXPOSE_QEMU,
# MEMEXPOSE_KO, MEMEXPOSE_CTL as for the guest tests; MXBENCH_COPY_MIB (32), MXBENCH_COPY_REPS (21),
# MXBENCH_LOAD_COUNT (2000), MXBENCH_DB_COUNT (1000), MXBENCH_DB_ROUNDS (6).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/build/bench
qemu_build=${MEMEXPOSE_QEMU_BUILD:-$top/build/qemu-10.0}
qemu=${MEMEXPOSE_QEMU:-$qemu_build/qemu-system-x86_64}
server=$qemu_build/contrib/ivshmem-server/ivshmem-server
ko=${MEMEXPOSE_KO:-$top/linux-driver/memexpose.ko}
ctl=${MEMEXPOSE_CTL:-$top/linux-driver/tools/memexpose-ctl}

die() { echo "bench: $*" >&2; exit 1; }

[ -x "$qemu" ] || die "no QEMU at $qemu (make qemu)"
[ -x "$server" ] || die "no ivshmem-server at $server (make qemu)"
[ -f "$ko" ] && [ -x "$ctl" ] || die "no $ko or $ctl (make driver)"
export MEMEXPOSE_QEMU="$qemu" MEMEXPOSE_KO="$ko" MEMEXPOSE_CTL="$ctl"

mkdir -p "$out"

# The plot.  Only the bench wants gnuplot, so it is installed here.
if ! command -v gnuplot >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench: installing gnuplot-nox for the plot"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox \
            > "$out/apt.log" 2>&1 ||
            echo "bench: apt-get install gnuplot-nox failed (see $out/apt.log); no plot"
    else
        echo "bench: gnuplot missing and not root; no plot"
    fi
fi

# The host's floor (bench/host-floor.c), measured beside the guests.
gcc -O2 -Wall -Wextra -Werror -o "$out/host-floor" "$top/bench/host-floor.c" ||
    die "building host-floor failed"

# The host side's figures: libmemexpose and memexpose-host built here
# with -O2 and without build/mx's sanitizers, so that they are measured
# as users run them.
lib="$top/contrib/libmemexpose/libmemexpose.c $top/hw/misc/memexpose/memexpose-wire.c"
inc="-I$top/contrib/libmemexpose -I$top/hw/misc/memexpose"
# shellcheck disable=SC2086
gcc -O2 -std=gnu11 -Wall $inc -o "$out/host-side" "$top/bench/host-side.c" \
    $lib || die "building host-side failed"
# shellcheck disable=SC2086
gcc -O2 -std=gnu11 -Wall $inc -o "$out/memexpose-host" \
    "$top/contrib/memexpose-host/memexpose-host.c" $lib ||
    die "building memexpose-host failed"

# Guest pieces.
gcc -static -O2 -Wall -Wextra -Werror -I"$top/linux-driver/include/uapi" \
    -I"$top/bench/guest" -o "$out/mxbench" "$top/bench/guest/mxbench.c" ||
    die "building mxbench failed"
make -s -C "$top/bench/guest/ivshmem-bench" O_DIR="$out/ivshmem-bench" \
    > "$out/ivshmem-bench-build.log" 2>&1 ||
    { cat "$out/ivshmem-bench-build.log" >&2; die "building ivshmem-bench.ko failed"; }
sh "$top/bench/build-initramfs.sh" "$out/initramfs.cpio.gz" "$out/mxbench" \
    "$out/ivshmem-bench/ivshmem-bench.ko" > "$out/initramfs.log" 2>&1 ||
    { cat "$out/initramfs.log" >&2; die "building the bench initramfs failed"; }

exec python3 "$top/bench/run-bench.py" --initrd "$out/initramfs.cpio.gz" \
    --qemu "$qemu" --ivshmem-server "$server" --host-floor "$out/host-floor" \
    --host-side "$out/host-side" --memexpose-host "$out/memexpose-host" \
    --out "$out" "$@"
