#!/bin/sh
# Debian's arm64 kernel, its headers and busybox-static for the aarch64
# Linux guest test (tests/guest/arm64-linux.py), unpacked into a directory
# without installing any arm64 package into the system.
#
#   scripts/arm64-guest.sh [ROOT]        (default build/arm64/root)
#
# Needs the arm64 foreign architecture in dpkg; as root it is added (and
# the package lists updated) when missing.  Versions are resolved from the
# archive at run time, never pinned here:
#
#   linux-image-arm64:arm64        -> Depends: linux-image-<KVER> (= V)
#   linux-image-<KVER>:arm64 = V    the kernel (/boot/vmlinuz-<KVER>)
#   linux-headers-<KVER>:arm64 = V  -> Depends: linux-headers-<ABI>-common
#                                      (= V), linux-kbuild-<X.Y> (>= V)
#   linux-headers-<ABI>-common = V  (arch all) the host's copy when it has
#                                   exactly V installed, else fetched
#   linux-kbuild-<X.Y> (host arch)  the headers' scripts/ and tools/ point
#                                   at it: the host's when installed at a
#                                   version >= V (what the arm64 headers
#                                   depend on), else V fetched and unpacked
#   busybox-static:arm64            the candidate version
#
# The .debs are kept in build/cache/arm64 (checked against the archive's
# SHA256) and unpacked with dpkg-deb -x into ROOT, which is replaced as a
# whole when a version changes.  ROOT/.memexpose-debs lists what it holds.
# A second run with everything in place only asks apt-cache and exits.
# When the archive cannot be asked (no root to enable arm64, no package
# lists) but ROOT is complete, ROOT is used as it is.
#
# Consumers (linux-driver/Makefile "arm64", tests/guest/build-initramfs.sh
# with MEMEXPOSE_GUEST_ARCH=arm64, tests/guest/harness.py) find in ROOT:
#   boot/vmlinuz-<KVER>               lib/modules/<KVER>/
#   usr/src/linux-headers-<KVER>/     bin/busybox
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$top/build/arm64/root}
cache=$top/build/cache/arm64
stamp=$root/.memexpose-debs

say() { echo "arm64-guest: $*"; }
die() { echo "arm64-guest: $*" >&2; exit 1; }

root_complete() { # ROOT: has everything the consumers need
    [ -f "$1/.memexpose-debs" ] &&
        ls "$1"/boot/vmlinuz-*-arm64 >/dev/null 2>&1 &&
        ls -d "$1"/usr/src/linux-headers-*-arm64 >/dev/null 2>&1 &&
        [ -f "$1/bin/busybox" ]
}

# Use what is there when the archive cannot be asked.
fallback() { # reason
    if root_complete "$root"; then
        say "$1; using $root as it is ($(tr '\n' ' ' < "$stamp"))"
        exit 0
    fi
    die "$1"
}

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

# 1. The arm64 architecture and its package lists.
updated=0
apt_update() {
    [ $is_root = 1 ] || fallback "not root: cannot run apt-get update"
    say "apt-get update"
    apt-get update -q >/dev/null || fallback "apt-get update failed"
    updated=1
}
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ $is_root = 1 ] ||
        fallback "dpkg has no arm64 architecture; run as root to add it"
    say "dpkg --add-architecture arm64"
    dpkg --add-architecture arm64
    apt_update
fi

# 2. Resolve the versions.  apt-cache rebuilds its cache on every call
# where pkgcache is off (Debian's container images): as few calls as can be.
show() { # PKG[=VERSION]...: the candidates' (or those versions') stanzas
    apt-cache show --no-all-versions "$@" 2>/dev/null
}
field() { # FIELD PACKAGE < stanzas: FIELD of PACKAGE's stanza
    awk -v f="$1" -v p="$2" '
        /^Package: / { cur = $2 }
        cur == p && index($0, f ": ") == 1 { print substr($0, length(f) + 3); exit }'
}
dep() { # PATTERN DEPENDS: the package in DEPENDS whose name matches PATTERN
    echo "$2" | tr ',|' '\n\n' | sed 's/^ *//; s/ .*//' |
        grep -x -- "$1" | head -n 1
}

top_stanzas=$(show linux-image-arm64:arm64 busybox-static:arm64) || true
if [ -z "$(echo "$top_stanzas" | field Version busybox-static)" ]; then
    [ $updated = 1 ] && fallback "no linux-image-arm64:arm64 or busybox-static:arm64 in the archive"
    apt_update
    top_stanzas=$(show linux-image-arm64:arm64 busybox-static:arm64) || true
fi
meta=$(echo "$top_stanzas" | field Depends linux-image-arm64)
img=$(dep 'linux-image-.*-arm64' "$meta")
[ -n "$img" ] || fallback "cannot tell the kernel from linux-image-arm64's Depends: '$meta'"
kver=${img#linux-image-}
ver=$(echo "$meta" | tr ',' '\n' | sed -n "s/^ *$img (= \(.*\))\$/\1/p")
[ -n "$ver" ] || ver=$(show "$img:arm64" | field Version "$img")
hdr=linux-headers-$kver
bbver=$(echo "$top_stanzas" | field Version busybox-static)
[ -n "$bbver" ] || fallback "no busybox-static:arm64 in the archive"

# The headers' dependencies follow from their version: read them from the
# stamp when it is for this version, else from the archive.
if [ -f "$stamp" ] && grep -qx "$hdr:arm64=$ver" "$stamp"; then
    common=$(sed -n 's/^\(host \)\{0,1\}\(linux-headers-[^ :]*-common\)[ :].*/\2/p' "$stamp")
    kbuild=$(sed -n 's/^\(host \)\{0,1\}\(linux-kbuild-[^ :]*\)[ :].*/\2/p' "$stamp")
fi
if [ -z "${common:-}" ] || [ -z "${kbuild:-}" ]; then
    hdeps=$(show "$hdr:arm64=$ver" | field Depends "$hdr")
    [ -n "$hdeps" ] || fallback "no $hdr:arm64 $ver in the archive"
    common=$(dep 'linux-headers-.*-common' "$hdeps")
    kbuild=$(dep 'linux-kbuild-.*' "$hdeps")
    [ -n "$common" ] && [ -n "$kbuild" ] ||
        fallback "cannot read $hdr's Depends: $hdeps"
fi

installed() { # PKG: its installed version, or nothing
    dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null |
        sed -n 's/^ii *//p'
}

# What goes into ROOT: "pkg:arch=version" each, plus the decisions about
# the host's common headers and kbuild.
want="linux-image-$kver:arm64=$ver
$hdr:arm64=$ver
busybox-static:arm64=$bbver"
if [ "$(installed "$common")" = "$ver" ] &&
   [ -f "/usr/src/$common/Makefile" ]; then
    common_dir=/usr/src/$common
    want="$want
host $common $ver"
else
    common_dir=../$common        # make -C runs in the headers' directory
    want="$want
$common:all=$ver"
fi
kb_host=$(installed "$kbuild")
if [ -n "$kb_host" ] && dpkg --compare-versions "$kb_host" ge "$ver" &&
   [ -d "/usr/lib/$kbuild/scripts" ]; then
    want="$want
host $kbuild $kb_host"
else
    [ -n "$kb_host" ] && say "host's $kbuild is $kb_host, the arm64 headers want >= $ver: fetching $ver"
    want="$want
$kbuild:$(dpkg --print-architecture)=$ver"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && root_complete "$root"; then
    exit 0
fi

# 3. Fetch what is missing into the cache.
mkdir -p "$cache"
deb_of() { # NAME ARCH VERSION: the file name apt-get download gives it
    echo "${1}_$(echo "$3" | sed 's/:/%3a/g')_$2.deb"
}
fetch() { # NAME ARCH VERSION
    f=$cache/$(deb_of "$1" "$2" "$3")
    spec=$1:$2=$3
    [ "$2" = all ] && spec=$1=$3
    sum=$(show "$spec" | field SHA256 "$1")
    if [ -f "$f" ]; then
        [ -n "$sum" ] && [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$sum" ] &&
            return 0
        rm -f "$f"
    fi
    [ $is_root = 1 ] || [ -w "$cache" ] || die "cannot write $cache"
    say "fetching $spec"
    # The cache is not writable for apt's sandbox user: download as root.
    if ! (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root \
              "$spec" >/dev/null); then
        # Lists older than the archive (the version is gone): update once.
        [ $updated = 1 ] && die "apt-get download $spec failed"
        apt_update
        (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root \
             "$spec" >/dev/null) || die "apt-get download $spec failed"
    fi
    [ -f "$f" ] || die "apt-get download $spec did not give $f"
    if [ -n "$sum" ] &&
       [ "$(sha256sum < "$f" | cut -d' ' -f1)" != "$sum" ]; then
        rm -f "$f"
        die "$f: SHA256 does not match the archive's"
    fi
}
debs=
while read -r line; do
    case "$line" in host\ *) continue ;; esac
    name=${line%%:*}
    rest=${line#*:}
    arch=${rest%%=*}
    v=${rest#*=}
    fetch "$name" "$arch" "$v"
    debs="$debs $cache/$(deb_of "$name" "$arch" "$v")"
done <<EOF
$want
EOF

# 4. Unpack into a fresh ROOT.
new=$root.new
rm -rf "$new"
mkdir -p "$new"
for d in $debs; do
    say "unpacking $(basename "$d")"
    dpkg-deb -x "$d" "$new"
done
# The headers' Makefile includes the common headers by absolute path:
# the host's, or the unpacked ones next to it (relative, so ROOT can move).
hdir=$new/usr/src/$hdr
[ -f "$hdir/Makefile" ] || die "$hdr has no Makefile"
printf 'include %s/Makefile\n' "$common_dir" > "$hdir/Makefile"
# scripts/ and tools/ are ../../lib/<kbuild>/...: the host's, or unpacked.
if [ ! -d "$new/usr/lib/$kbuild" ]; then
    mkdir -p "$new/usr/lib"
    ln -s "/usr/lib/$kbuild" "$new/usr/lib/$kbuild"
fi
[ -x "$hdir/scripts/basic/fixdep" ] || [ -x "$hdir/scripts/mod/modpost" ] ||
    die "$hdir/scripts does not lead to a usable $kbuild"
[ -f "$new/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $img"
# modules.dep is made at installation: build-initramfs.sh resolves the
# driver's dependencies with modinfo -b ROOT.
depmod -b "$new" "$kver" || die "depmod -b $new $kver failed"
[ -f "$new/bin/busybox" ] || die "no bin/busybox in busybox-static"
printf '%s\n' "$want" > "$new/.memexpose-debs"
rm -rf "$root"
mv "$new" "$root"
# Older versions are of no further use.
for f in "$cache"/*.deb; do
    case " $debs " in *" $f "*) ;; *) rm -f "$f" ;; esac
done
say "$kver ($ver), busybox $bbver in $root"
