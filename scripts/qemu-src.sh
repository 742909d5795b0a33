#!/bin/sh
# Provide a QEMU 10.0.x source tree at $1 (a path under build/) and print
# its version.  Default: Debian's qemu source package with Debian's patches
# applied by dpkg-source.  QEMU_SRC=/path uses the caller's own tree.
#
# The tree is turned into a git repository whose first commit is the
# pristine source (tag memexpose-base) so that the overlay can be exported
# as a patch series against it.
set -eu

dest=$1
cache=${MEMEXPOSE_CACHE:-$(dirname "$dest")/cache}

check_version() {
    v=$(cat "$1/VERSION" 2>/dev/null || true)
    case "$v" in
    10.0.*) echo "qemu-src: QEMU $v from $1" >&2 ;;
    "") echo "qemu-src: $1 is not a QEMU source tree (no VERSION file)" >&2
        exit 1 ;;
    *)  echo "qemu-src: $1 is QEMU $v; memexpose needs QEMU 10.0.x" >&2
        exit 1 ;;
    esac
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

if [ -n "${QEMU_SRC:-}" ]; then
    check_version "$QEMU_SRC"
    make_base "$QEMU_SRC"
    rm -f "$dest"
    ln -s "$(cd "$QEMU_SRC" && pwd)" "$dest"
    exit 0
fi

if [ -L "$dest" ]; then
    # Previously pointed at a user tree; go back to Debian's source.
    rm -f "$dest"
fi

if [ -f "$dest/VERSION" ] && [ -d "$dest/.git" ]; then
    check_version "$dest"
    exit 0
fi

# QEMU 10.0.x source packages apt knows about, newest first.  An archive may
# list a version whose files it no longer carries, so try each in turn.
versions=$(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ { print $2 }' |
           grep -E '^(1:)?10\.0\.' | sort -u -r -V)
if [ -z "$versions" ]; then
    echo "qemu-src: apt knows no qemu 10.0.x source package;" \
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
    echo "qemu-src: no qemu 10.0.x source package could be fetched" >&2
    exit 1
fi

rm -rf "$dest.tmp"
dpkg-source --no-check -x "$dsc" "$dest.tmp" >&2
check_version "$dest.tmp"
make_base "$dest.tmp"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
