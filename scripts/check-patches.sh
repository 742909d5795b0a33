#!/bin/sh
# Check the exported series in $2 against the overlaid QEMU tree $1: it
# applies with git am to the pristine tree, reproduces exactly the files
# the overlay builds with, and passes QEMU's checkpatch.pl without errors.
set -eu

tree=$(cd "$1" && pwd)
patches=$(cd "$2" && pwd)
wt=$(mktemp -d)
trap 'git -C "$tree" worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git -C "$tree" worktree add -q --detach "$wt" memexpose-base

set -- "$patches"/[0-9][0-9][0-9][0-9]-*.patch
for p in "$@"; do
    case "$p" in */0000-cover-letter.patch) continue ;; esac
    git -C "$wt" -c user.name=check -c user.email=check@localhost am -q "$p" || {
        echo "check-patches: $(basename "$p") does not apply with git am" >&2
        exit 1
    }
done

count=0
for p in "$@"; do
    case "$p" in */0000-cover-letter.patch) ;; *) count=$((count + 1)) ;; esac
done

status=0
for f in $(git -C "$wt" diff --name-only memexpose-base HEAD); do
    if ! cmp -s "$wt/$f" "$tree/$f"; then
        echo "check-patches: $f differs between the series and the overlay" >&2
        status=1
    fi
done

for p in "$@"; do
    case "$p" in */0000-cover-letter.patch) continue ;; esac
    if ! (cd "$tree" && ./scripts/checkpatch.pl -q --no-signoff "$p" > "$wt/.cp" 2>&1); then
        if grep -q '^ERROR' "$wt/.cp"; then
            cat "$wt/.cp" >&2
            echo "check-patches: checkpatch.pl reports errors in $(basename "$p")" >&2
            status=1
        fi
    fi
done
[ $status -eq 0 ] && echo "check-patches: $count patch(es) apply, match the overlay, pass checkpatch"
exit $status
