#!/bin/sh
# Command-line checks of memexpose-pci with the built x86_64 QEMU $1 and
# of memexpose-sysbus with the aarch64 QEMU $2: the documented properties
# are listed, bad values are refused at start with a message that names
# the problem, and the device tree node is generated.  Prints TAP.
set -u

qemu=$1
qemu_arm=$2
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
help_arm=$("$qemu_arm" -device memexpose-sysbus,help 2>&1)
for prop in chardev export name window-size vectors queue-depth timeout \
            heartbeat zero-copy doorbell-ring trust-peer boot-target; do
    echo "$help" | grep -q "^  $prop=" ; ok $? "property $prop is listed"
    echo "$help_arm" | grep -q "^  $prop=" ; ok $? "sysbus: $prop is listed"
done
echo "$help_arm" | grep -q "^  window-size=.*(default: 16777216)"
ok $? "sysbus: the window defaults to 16 MiB"

# Every property says what it is for; the counters say they are read-only.
for prop in chardev export name window-size vectors queue-depth timeout \
            heartbeat zero-copy doorbell-ring trust-peer boot-target; do
    line=$(echo "$help" | grep "^  $prop=")
    echo "$line" | grep -q "^  $prop=<[^>]*> *- [a-z].\{15,\}"
    ok $? "property $prop has a description"
    echo "$line" | grep -q "(read-only)"
    [ $? -ne 0 ]; ok $? "property $prop is not marked read-only"
    echo "$help_arm" | grep "^  $prop=" | grep -q "^  $prop=<[^>]*> *- [a-z]"
    ok $? "sysbus: $prop has a description"
done
for prop in link-up peer-name forward-reason forwarded-reads \
            forwarded-writes served-reads served-writes refused-accesses \
            mapped-bytes mappings-made doorbells-sent doorbells-received \
            doorbells-dropped timeouts link-ups invalidations; do
    echo "$help" | grep -q "^  $prop=<[^>]*> *- [a-z].* (read-only)\$"
    ok $? "counter $prop is described as read-only"
    echo "$help_arm" | grep -q "^  $prop=<[^>]*> *- [a-z].* (read-only)\$"
    ok $? "sysbus: counter $prop is described as read-only"
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

refuse boot-target=on "boot-target=on is supported only on Arm machines"

# The id is the default name, which HELLO limits to 63 characters.
long_id=mx-0123456789-0123456789-0123456789-0123456789-0123456789-012345
refuse "id=$long_id" "the device id '$long_id' cannot be the link's name"
refuse "id=$long_id" "at most 63 characters; give the device a name="
refuse "id=mx0,name=$long_id" "name must be printable ASCII of at most 63"
out=$(echo quit | timeout 20 "$qemu" -display none -S -monitor stdio \
      -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
      -device "memexpose-pci,chardev=mx,id=$long_id,name=short" 2>&1)
ok $? "accepts a long id with a short name="

# info memexpose and query-memexpose of a device without a peer.
out=$(printf 'info memexpose\nquit\n' |
      timeout 20 "$qemu" -display none -S -monitor stdio \
      -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
      -device "memexpose-pci,chardev=mx,id=mx0,name=vm-a,export=0+1M:ro" \
      2>&1)
echo "$out" | grep -q '^mx0: memexpose-pci at /machine/peripheral/mx0, name "vm-a"'
ok $? "info memexpose names the device"
echo "$out" | grep -q '^  link: down, epoch 0'
ok $? "info memexpose: the link is down"
echo "$out" | grep -q '^  window: 0x40000000 bytes at peer address 0x0'
ok $? "info memexpose: the window"
echo "$out" | grep -q '^  exports: 0x0+0x100000:ro'
ok $? "info memexpose: the export policy"
echo "$out" | grep -q '^  doorbells-sent: 0  doorbells-received: 0  doorbells-dropped: 0'
ok $? "info memexpose: the counters"
out=$(printf '%s\n' '{"execute": "qmp_capabilities"}' \
                     '{"execute": "query-memexpose"}' '{"execute": "quit"}' |
      timeout 20 "$qemu" -display none -S -qmp stdio -monitor none \
      -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
      -device "memexpose-pci,chardev=mx,id=mx0,name=vm-a" 2>&1)
echo "$out" | grep '"return": \[' |
    grep '"qom-path": "/machine/peripheral/mx0"' | grep '"link": "down"' |
    grep -q '"counters": {'
ok $? "query-memexpose reports the device"
out=$(printf 'info memexpose\nquit\n' |
      timeout 20 "$qemu" -display none -S -monitor stdio 2>&1)
echo "$out" | grep -q '^No memexpose devices'
ok $? "info memexpose without a device"

# refuse_chardev CHARDEV-OPTIONS EXPECTED-MESSAGE: only a unix socket
# can carry the link's descriptors; anything else is refused by name.
refuse_chardev() {
    out=$(timeout 20 "$qemu" -display none -S -chardev "$1" \
          -device memexpose-pci,chardev=mx 2>&1 </dev/null)
    rc=$?
    [ $rc -eq 1 ] && echo "$out" | grep -q -- "$2"
    ok $? "refuses -chardev $1 (exit $rc)"
}

refuse_chardev null,id=mx "chardev 'mx' is of type 'null'; the link needs a unix socket"
refuse_chardev ringbuf,id=mx "chardev 'mx' is of type 'ringbuf'"
refuse_chardev "file,id=mx,path=$dir/f" "chardev 'mx' is of type 'file'"
refuse_chardev stdio,id=mx "chardev 'mx' is of type 'stdio'"
refuse_chardev "socket,id=mx,host=127.0.0.1,port=0,server=on,wait=off" \
    "chardev 'mx' is not a unix socket"

# sysbus on virt: arm_start EXTRA-MACHINE-OPTS DEVICE-OPTS [ARGS...]
arm_start() {
    machine=$1
    dev=$2
    shift 2
    timeout 20 "$qemu_arm" -M "virt$machine" -cpu cortex-a57 -m 128 \
        -display none -S "$@" \
        -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
        -device "memexpose-sysbus,chardev=mx$dev" 2>&1 </dev/null
}

out=$(arm_start "" ",window-size=64M" -monitor none)
[ $? -ne 0 ] && echo "$out" | grep -q "Can not fit MMIO region"
ok $? "sysbus: refuses a window larger than virt's platform bus"

out=$(timeout 20 "$qemu" -M pc -display none -S \
      -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
      -device memexpose-sysbus,chardev=mx 2>&1 </dev/null)
[ $? -ne 0 ] && echo "$out" | grep -q "memexpose-sysbus"
ok $? "sysbus: refused by a machine without a platform bus"

# An Arm machine other than virt names itself and the device.
out=$(timeout 20 "$qemu_arm" -M none -display none -S \
      -chardev "socket,id=mx,path=$dir/s,server=on,wait=off" \
      -device memexpose-sysbus,chardev=mx 2>&1 </dev/null)
[ $? -eq 1 ] &&
    echo "$out" | grep -q "Machine type 'none' does not support the sysbus device 'memexpose-sysbus'"
ok $? "sysbus: a machine other than virt says why it refuses"

# The device tree node: both regions and one level-high SPI.
arm_start ",dumpdtb=$dir/virt.dtb" ",window-size=8M" >/dev/null
dtc -q -I dtb -O dts "$dir/virt.dtb" >"$dir/virt.dts" 2>/dev/null
node=$(sed -n '/memexpose@0 {/,/};/p' "$dir/virt.dts")
echo "$node" | grep -q 'compatible = "qemu,memexpose";'
ok $? "sysbus: device tree node with compatible qemu,memexpose"
echo "$node" | grep -q 'reg = <0x00 0x1000 0x800000 0x800000>;'
ok $? "sysbus: reg lists the registers and the window"
echo "$node" | grep -q 'interrupts = <0x00 0x[0-9a-f]* 0x04>;'
ok $? "sysbus: one level-high SPI"

echo "1..$n"
exit $fail
