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
