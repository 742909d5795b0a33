#!/bin/sh
# Build the initramfs for `make bench`: the guest-test initramfs
# (tests/guest/build-initramfs.sh: busybox, memexpose.ko, memexpose-ctl,
# /init) followed by a second cpio archive with the bench's own files.
# The kernel unpacks concatenated (compressed) cpio archives in order.
#
#   bench/build-initramfs.sh OUT.cpio.gz MXBENCH IVSHMEM_BENCH_KO
#
# Adds /bin/mxbench and /ivshmem-bench.ko.  MEMEXPOSE_KO, MEMEXPOSE_CTL
# and MEMEXPOSE_KVER are passed on to tests/guest/build-initramfs.sh.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT.cpio.gz MXBENCH IVSHMEM_BENCH_KO}
mxbench=${2:?usage: $0 OUT.cpio.gz MXBENCH IVSHMEM_BENCH_KO}
ivko=${3:?usage: $0 OUT.cpio.gz MXBENCH IVSHMEM_BENCH_KO}

die() { echo "bench/build-initramfs: $*" >&2; exit 1; }

[ -x "$mxbench" ] || die "no $mxbench"
[ -f "$ivko" ] || die "no $ivko"
if file -L "$mxbench" 2>/dev/null | grep -q 'dynamically linked'; then
    die "$mxbench is dynamically linked; the initramfs has no libc"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

sh "$top/tests/guest/build-initramfs.sh" "$stage/base.cpio.gz" > "$stage/base.log"
cat "$stage/base.log"
kver=$(sed -n 's|^kernel: /boot/vmlinuz-||p' "$stage/base.log")
vermagic=$(modinfo -F vermagic "$ivko")
case "$vermagic" in
    "$kver "*) ;;
    *) die "$ivko was built for '${vermagic%% *}', the kernel is $kver" ;;
esac

mkdir -p "$stage/extra/bin"
cp "$mxbench" "$stage/extra/bin/mxbench"
chmod 755 "$stage/extra/bin/mxbench"
cp "$ivko" "$stage/extra/ivshmem-bench.ko"
(cd "$stage/extra" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -6 > "$stage/extra.cpio.gz"

mkdir -p "$(dirname "$out")"
cat "$stage/base.cpio.gz" "$stage/extra.cpio.gz" > "$out.tmp"
mv "$out.tmp" "$out"
echo "bench initramfs: $out ($(wc -c < "$out") bytes, + mxbench, ivshmem-bench.ko)"
