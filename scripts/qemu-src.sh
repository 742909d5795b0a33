#!/bin/sh
# Provide a QEMU source tree of release series $1 (10.0, 10.2) at $2 (a
# path under build/) and print its version.  Default: Debian's qemu
# source package of that series with Debian's patches applied by
# dpkg-source.  QEMU_SRC=/path uses the caller's own tree instead, which
# must be of series $1 (the Makefile derives $1 from it).
#
# The tree is turned into a git repository whose first commit is the
# pristine source (tag memexpose-base) so that the overlay can be exported
# as a patch series against it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
series=$1
dest=$2
cache=${MEMEXPOSE_CACHE:-$(dirname "$dest")/cache}

sh "$here/qemu-version.sh" --check "$series"

check_version() {
    got=$(sh "$here/qemu-version.sh" "$1") || exit 1
    if [ "$got" != "$series" ]; then
        echo "qemu-src: $1 is QEMU $(cat "$1/VERSION"), expected $series.x" >&2
        exit 1
    fi
    echo "qemu-src: QEMU $(cat "$1/VERSION") from $1" >&2
}

make_base() {
    # Record the pristine tree once; a user's own git tree keeps its history
    # and just gets the tag on its current HEAD.
    if ! git -C "$1" rev-parse -q --verify memexpose-base >/dev/null 2>&1; then
        if [ ! -d "$1/.git" ]; then
            git -C "$1" init -q
            git -C "$1" add -A -f .
            git -C "$1" -c user.name=memexpose -c user.email=memexpose@localhost \
                commit -q -m "QEMU $(cat "$1/VERSION") pristine source"
        fi
        git -C "$1" tag memexpose-base
    fi
}

# Debian's tree steps aside (to $dest.debian) while a user tree is linked
# in its place, and comes back afterwards.
if [ -n "${QEMU_SRC:-}" ]; then
    check_version "$QEMU_SRC"
    make_base "$QEMU_SRC"
    if [ -e "$dest" ] &&
       [ "$(cd "$QEMU_SRC" && pwd -P)" = "$(cd "$dest" && pwd -P)" ]; then
        exit 0      # QEMU_SRC is this very tree
    fi
    if [ -d "$dest" ] && [ ! -L "$dest" ]; then
        rm -rf "$dest.debian"
        mv "$dest" "$dest.debian"
    fi
    rm -f "$dest"
    ln -s "$(cd "$QEMU_SRC" && pwd -P)" "$dest"
    exit 0
fi

if [ -L "$dest" ]; then
    rm -f "$dest"
    [ -d "$dest.debian" ] && mv "$dest.debian" "$dest"
fi

if [ -f "$dest/VERSION" ] && [ -d "$dest/.git" ]; then
    check_version "$dest"
    exit 0
fi

# Source packages of this series apt knows about, newest first.  An
# archive may list a version whose files it no longer carries, so try
# each in turn.
pattern="^(1:)?$(echo "$series" | sed 's/\./\\./g')\\."
versions=$(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ { print $2 }' |
           grep -E "$pattern" | sort -u -r -V || true)
if [ -z "$versions" ]; then
    echo "qemu-src: apt knows no qemu $series.x source package;" \
         "run scripts/deps.sh as root first (it adds the deb-src entries)" >&2
    exit 1
fi

mkdir -p "$cache"
dsc=
for version in $versions; do
    upstream=${version#*:}
    if [ -f "$cache/qemu_$upstream.dsc" ]; then
        dsc=$cache/qemu_$upstream.dsc
        break
    fi
    echo "qemu-src: fetching Debian source qemu $version" >&2
    if (cd "$cache" && apt-get source -q --download-only "qemu=$version" >&2); then
        dsc=$cache/qemu_$upstream.dsc
        break
    fi
    echo "qemu-src: qemu $version could not be fetched, trying an older one" >&2
done
if [ -z "$dsc" ]; then
    echo "qemu-src: no qemu $series.x source package could be fetched" >&2
    exit 1
fi

rm -rf "$dest.tmp"
dpkg-source --no-check -x "$dsc" "$dest.tmp" >&2
check_version "$dest.tmp"
make_base "$dest.tmp"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
