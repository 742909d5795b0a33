#!/bin/sh
# The QEMU release series memexpose supports, in one place.
#
#   qemu-version.sh --supported     print them ("10.0 10.2")
#   qemu-version.sh --check SERIES  fail unless SERIES is one of them
#   qemu-version.sh TREE            print the series of the QEMU source
#                                   tree TREE ("10.2"), or fail with a
#                                   message naming the supported ones
set -eu

supported="10.0 10.2"

is_supported() {
    for s in $supported; do
        [ "$s" = "$1" ] && return 0
    done
    return 1
}

case "${1:-}" in
--supported)
    echo "$supported"
    ;;
--check)
    if ! is_supported "${2:-}"; then
        echo "qemu-version: QEMU '${2:-}' is not supported;" \
             "supported are $(echo $supported | sed 's/ /, /g')" >&2
        exit 1
    fi
    ;;
''|-*)
    echo "usage: qemu-version.sh --supported | --check SERIES | TREE" >&2
    exit 2
    ;;
*)
    if [ ! -f "$1/VERSION" ] || [ ! -f "$1/meson.build" ]; then
        echo "qemu-version: $1 is not a QEMU source tree" \
             "(no VERSION or meson.build)" >&2
        exit 1
    fi
    v=$(cat "$1/VERSION")
    series=$(echo "$v" | sed -n 's/^\([0-9][0-9]*\.[0-9][0-9]*\)\..*/\1/p')
    if [ -z "$series" ] || ! is_supported "$series"; then
        echo "qemu-version: $1 is QEMU $v; memexpose supports QEMU" \
             "$(echo $supported | sed 's/ /.x, /g').x" >&2
        exit 1
    fi
    echo "$series"
    ;;
esac
