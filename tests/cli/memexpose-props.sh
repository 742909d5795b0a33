#!/bin/sh
# Command-line checks of memexpose-pci with the built QEMU $1: the
# documented properties are listed, and bad values are refused at start
# with a message that names the problem.  Prints TAP.
set -u

qemu=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=0
fail=0

ok() {
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        fail=1
    fi
}

help=$("$qemu" -device memexpose-pci,help 2>&1)
for prop in chardev export name window-size vectors queue-depth timeout \
            heartbeat zero-copy trust-peer; do
    echo "$help" | grep -q "^  $prop=" ; ok $? "property $prop is listed"
done

# refuse VALUE EXPECTED-MESSAGE
refuse() {
    out=$(timeout 20 "$qemu" -display none -S \
          -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
          -device "memexpose-pci,chardev=mx,$1" 2>&1 </dev/null)
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "$out" | grep -q -- "$2"
    ok $? "refuses $1"
}

refuse window-size=12345 "window-size must be a power of two"
refuse export=nonsense "is not ADDR+SIZE"
refuse "export=0+1M:rx" "permission must be ro or rw"
refuse "export=0+1M;0x80000+1M" "overlaps another"
refuse "export=0xffffffffffffffff+2" "wraps around"
refuse vectors=0 "vectors must be"
refuse queue-depth=5000 "queue-depth must be"
refuse timeout=0 "timeout must be"

out=$(timeout 20 "$qemu" -display none -S \
      -device memexpose-pci 2>&1 </dev/null)
rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "'chardev' property is required"
ok $? "refuses a missing chardev"

echo "1..$n"
exit $fail
