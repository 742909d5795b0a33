#!/bin/sh
# Add the apt entries memexpose needs, for the Debian archive this machine
# already uses: <release>-backports (meson >= 1.5, pycotap for QEMU 10.x),
# and deb-src for this release, for trixie (QEMU 10.0.x) and for sid
# (QEMU 10.2.x), the source packages with Debian's patches that memexpose
# is tested on.  The newer suites are deb-src only, so they never change
# which binary packages get installed; backports is NotAutomatic and only
# used with -t.  The archive URI is read from the machine's own apt
# configuration so that no mirror is ever named in the repository.
set -eu

list=/etc/apt/sources.list.d/memexpose.sources

archive_uri() {
    # deb822 files first (Debian 12 default), then one-line sources.list.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        [ "$f" = "$list" ] && continue
        awk '
            /^[[:space:]]*$/ { if (deb && uri != "") { print uri; exit } deb = 0; uri = ""; next }
            /^Types:/ { deb = ($0 ~ /[[:space:]]deb([[:space:]]|$)/) }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { if ($0 ~ /security/) uri = ""; suites = 1 }
            END { if (deb && uri != "") print uri }
        ' "$f" | grep -v -- '-security' | head -n 1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk '$1 == "deb" && $0 !~ /security/ {
                 for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit }
             }' "$f"
    done
}

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ -z "$codename" ]; then
    echo "apt-sources: cannot tell the Debian release from /etc/os-release" >&2
    exit 1
fi

uri=$(archive_uri | head -n 1)
if [ -z "$uri" ]; then
    echo "apt-sources: no Debian archive found in the apt configuration" >&2
    exit 1
fi

src_suites="$codename $codename-updates"
case "$codename" in
sid) ;;
trixie) src_suites="$src_suites sid" ;;
*) src_suites="$src_suites trixie trixie-updates sid" ;;
esac

new=$(cat <<EOT
# Written by memexpose scripts/apt-sources.sh from this machine's apt setup.
Types: deb deb-src
URIs: $uri
Suites: $codename-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $uri
Suites: $src_suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
)

if [ -f "$list" ] && [ "$(cat "$list")" = "$new" ]; then
    exit 0
fi
printf '%s\n' "$new" > "$list"
echo "apt-sources: wrote $list (archive $uri, $codename)"
# Signal to the caller that the package lists are stale.
touch /var/lib/apt/lists/.memexpose-stale 2>/dev/null || true
