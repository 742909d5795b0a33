#!/bin/sh
# Export memexpose as a git format-patch series against the pristine QEMU
# tree $1 (tag memexpose-base) into directory $2, one patch per stanza of
# patches/series, with the hook diffs of that tree's QEMU release series.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "$1" && pwd)
out=$2
. "$top/scripts/series.sh"

series_check_complete

name=$(git -C "$top" config user.name 2>/dev/null || echo "memexpose developers")
email=$(git -C "$top" config user.email 2>/dev/null || echo "memexpose@localhost")
wt=$(mktemp -d)
trap 'git -C "$tree" worktree remove --force "$wt" >/dev/null 2>&1 || rm -rf "$wt"' EXIT
git -C "$tree" worktree add -q --detach "$wt" memexpose-base

subject=
msgfile=$wt/.memexpose-msg

commit_open_patch() {
    [ -n "$subject" ] || return 0
    # Keep the trailer out of the body built so far, then sign off.
    git -C "$wt" -c user.name="$name" -c user.email="$email" \
        commit -q -s -F "$msgfile"
    subject=
}

on_patch() {
    commit_open_patch
    subject=$1
    printf '%s\n\n' "$subject" > "$msgfile"
}
on_body() { printf '%s\n' "$1" >> "$msgfile"; }
on_file() {
    mkdir -p "$(dirname "$wt/$2")"
    cp "$top/$1" "$wt/$2"
    git -C "$wt" add "$2"
}
on_hook() { git -C "$wt" apply --index "$1"; }
on_end() { commit_open_patch; }

series_walk
rm -f "$msgfile"

rm -rf "$out"
mkdir -p "$out"
count=$(git -C "$wt" rev-list --count memexpose-base..HEAD)
cover=
[ "$count" -gt 1 ] && cover=--cover-letter
git -C "$wt" format-patch -q $cover -o "$(cd "$out" && pwd)" memexpose-base..HEAD
if [ -n "$cover" ]; then
    # Subject: first line of patches/cover-letter; blurb: the rest.
    letter=$out/0000-cover-letter.patch
    subject=$(head -n 1 "$top/patches/cover-letter")
    tail -n +2 "$top/patches/cover-letter" > "$wt/.blurb"
    printf '\nBased on QEMU %s.\n' "$(cat "$tree/VERSION")" >> "$wt/.blurb"
    sed -i -e "s|\*\*\* SUBJECT HERE \*\*\*|$subject|" \
        -e "/\*\*\* BLURB HERE \*\*\*/{
r $wt/.blurb
d
}" "$letter"
    rm -f "$wt/.blurb"
fi
echo "patches: $count patch(es) in $out"
ls "$out"
