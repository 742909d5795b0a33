#!/bin/sh
# Overlay memexpose onto the QEMU tree $1: symlink our files to their QEMU
# paths and apply the hook patches to existing QEMU files.  Idempotent:
# running it again changes nothing.
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
    mkdir -p "$(dirname "$tree/$1")"
    if [ "$(readlink "$tree/$1" 2>/dev/null)" != "$top/$1" ]; then
        if [ -e "$tree/$1" ] && [ ! -L "$tree/$1" ]; then
            echo "overlay: $tree/$1 exists in QEMU and is not ours" >&2
            exit 1
        fi
        ln -sfn "$top/$1" "$tree/$1"
    fi
}

on_hook() {
    diff=$top/patches/$1
    if git -C "$tree" apply --check -R "$diff" 2>/dev/null; then
        return      # already applied
    fi
    if ! git -C "$tree" apply "$diff"; then
        echo "overlay: patches/$1 does not apply to $tree" >&2
        exit 1
    fi
    echo "overlay: applied $1"
}

series_walk
