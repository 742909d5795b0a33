#!/bin/sh
# Overlay memexpose onto the QEMU tree $1: symlink our files to their QEMU
# paths (patches/series says which goes where) and apply the hook patches
# to existing QEMU files.  Idempotent: running it again changes nothing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "$1" && pwd)
. "$top/scripts/series.sh"

mkdir -p "$top/build"
series_check_complete

on_patch() { :; }
on_body() { :; }
on_end() { :; }

on_file() {
    if [ ! -e "$top/$1" ]; then
        echo "overlay: $1 is listed in patches/series but missing" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$tree/$2")"
    if [ "$(readlink "$tree/$2" 2>/dev/null)" != "$top/$1" ]; then
        if [ -e "$tree/$2" ] && [ ! -L "$tree/$2" ]; then
            echo "overlay: $tree/$2 exists in QEMU and is not ours" >&2
            exit 1
        fi
        ln -sfn "$top/$1" "$tree/$2"
    fi
}

on_hook() {
    name=${1#$top/}
    if git -C "$tree" apply --check -R "$1" 2>/dev/null; then
        return      # already applied
    fi
    if ! git -C "$tree" apply "$1"; then
        echo "overlay: $name does not apply to QEMU $qemu_series at $tree" >&2
        exit 1
    fi
    echo "overlay: applied $name"
}

series_walk

# Links to files of ours that have since moved or gone.
find "$tree/hw" "$tree/include" "$tree/docs" "$tree/tests" -xtype l 2>/dev/null |
while IFS= read -r link; do
    case "$(readlink "$link")" in
    "$top"/*) rm -f "$link"; echo "overlay: removed stale ${link#$tree/}" ;;
    esac
done
