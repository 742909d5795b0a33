#!/bin/sh
# Run every memexpose test suite and print one closing line
# "check: N passed, M failed".  The codec's own tests run once; every
# QEMU-side suite (built binaries, patch series, command line, qtest,
# driver, guests) runs against each QEMU release series given as
# arguments (default: all supported ones), built in build/qemu-SERIES
# from build/qemu-src-SERIES.  Individual GTest cases are counted from
# their TAP output; other checks count as one test each.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
mx_build=$top/build/mx
logroot=$top/build/test-logs
logdir=$logroot
versions=${*:-$(sh "$top/scripts/qemu-version.sh" --supported)}
rm -rf "$logroot"
mkdir -p "$logdir"

passed=0
failed=0
skipped=0
failures=
tally=

record() { # name status
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures $1"
    fi
}

# run_tap NAME CMD...: run a TAP-speaking test program, count its cases.
run_tap() {
    name=$1
    shift
    log=$logdir/$name.log
    timeout "${MEMEXPOSE_TEST_TIMEOUT:-1200}" "$@" > "$log" 2>&1
    rc=$?
    # A skipped case ("ok N - ... # SKIP why") is neither passed nor failed.
    skip=$(grep -cE '^ok .*# SKIP' "$log")
    ok=$(($(grep -cE '^ok ' "$log") - skip))
    bad=$(grep -cE '^not ok ' "$log")
    passed=$((passed + ok))
    failed=$((failed + bad))
    skipped=$((skipped + skip))
    [ "$bad" -gt 0 ] && failures="$failures $name"
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        # Crashed, timed out or failed outside any test case.
        record "$name" 1
    fi
    if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ] && [ "$skip" -eq 0 ] &&
       [ "$rc" -eq 0 ]; then
        echo "$name: ran no test case" >&2
        record "$name" 1
    fi
    printf '%-28s %s passed, %s failed%s (exit %s)\n' "$name" "$ok" "$bad" \
        "$([ "$skip" -gt 0 ] && echo ", $skip skipped")" "$rc"
    [ "$skip" -gt 0 ] && grep -E '^ok .*# SKIP' "$log" | head -n 3 | sed 's/^/    | /'
    [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ] && tail -n 30 "$log" | sed 's/^/    | /'
    return 0
}

# run_one NAME CMD...: a check that passes when CMD exits 0.
run_one() {
    name=$1
    shift
    log=$logdir/$name.log
    timeout "${MEMEXPOSE_TEST_TIMEOUT:-1200}" "$@" > "$log" 2>&1
    rc=$?
    record "$name" $rc
    if [ $rc -eq 0 ]; then
        printf '%-28s ok\n' "$name"
    else
        printf '%-28s FAILED (exit %s)\n' "$name" "$rc"
        tail -n 30 "$log" | sed 's/^/    | /'
    fi
}

echo "== unit: wire codec (plain C, the same for every QEMU)"
run_tap wire-unit "$mx_build/tests/unit/test-wire" --tap
run_one fuzz-corpus-replay "$mx_build/tests/fuzz/fuzz-wire-replay" "$top/tests/fuzz/corpus/wire"
# The same corpus through libmemexpose's own receive path.
run_one libmemexpose-corpus-replay "$mx_build/contrib/libmemexpose/libmemexpose-replay" "$top/tests/fuzz/corpus/wire"

echo "== linux driver (built against the guest kernel, not QEMU)"
# Warnings are failures: W=1 and sparse must stay quiet.
run_one driver-w1-clean sh -c "make -s -C '$top/linux-driver' w1 2>&1 |
    tee /dev/stderr | grep -q 'warning:' && exit 1; make -s -C '$top/linux-driver' tools"
run_one driver-sparse-clean sh -c "make -s -C '$top/linux-driver' sparse 2>&1 |
    tee /dev/stderr | grep -q -E 'warning:|error:' && exit 1; exit 0"
# Users install the driver with DKMS: a real dkms build (private tree)
# against the guest kernel's headers; no dkms is a failure, not a skip.
run_one driver-dkms-build make -s -C "$top/linux-driver" dkms-check

for v in $versions; do
    qemu_tree=$top/build/qemu-src-$v
    qemu_build=$top/build/qemu-$v
    guest_work=$top/build/guest/work-$v
    logdir=$logroot/$v
    mkdir -p "$logdir"
    before_passed=$passed
    before_failed=$failed
    failures_before=$failures
    # The guest tests take their QEMU from the environment.
    export MEMEXPOSE_QEMU_BUILD="$qemu_build"
    export MEMEXPOSE_QEMU="$qemu_build/qemu-system-x86_64"
    export MEMEXPOSE_QEMU_AARCH64="$qemu_build/qemu-system-aarch64"

    echo "== QEMU $v: built binaries"
    for t in x86_64 aarch64; do
        # Runs, and has the memexpose codec linked in.
        run_one "qemu-$t-has-memexpose" sh -c \
            '"$1" -version && nm "$1" | grep -q " T mxp_decode$"' \
            _ "$qemu_build/qemu-system-$t"
    done

    echo "== QEMU $v: patch series"
    run_one patch-series sh -c "sh '$top/scripts/export-patches.sh' '$qemu_tree' '$top/build/patches/$v' &&
        sh '$top/scripts/check-patches.sh' '$qemu_tree' '$top/build/patches/$v'"

    echo "== QEMU $v: memexpose-pci and memexpose-sysbus on the command line"
    run_tap cli-props sh "$top/tests/cli/memexpose-props.sh" \
        "$qemu_build/qemu-system-x86_64" "$qemu_build/qemu-system-aarch64"

    echo "== QEMU $v: qtest"
    export QTEST_QEMU_IMG="$qemu_build/qemu-img"
    export QTEST_QEMU_BINARY="$qemu_build/qemu-system-x86_64"
    # memexpose-test replays the device fuzzer's corpus.
    export MEMEXPOSE_DEVICE_CORPUS="$top/tests/fuzz/corpus/device"
    run_tap qtest-memexpose "$qemu_build/tests/qtest/memexpose-test" --tap
    run_tap qtest-ivshmem "$qemu_build/tests/qtest/ivshmem-test" --tap -m slow
    # The boot cases skip without firmware; here a skip is a failure.
    QTEST_QEMU_BINARY="$qemu_build/qemu-system-aarch64" \
    MEMEXPOSE_FW="$top/build/firmware/memexpose-fw-aarch64.bin" \
        run_tap qtest-memexpose-boot bash -c 'set -o pipefail; "$@" | sed "s/^ok \(.*# SKIP\)/not ok \1/"' \
        _ "$qemu_build/tests/qtest/memexpose-boot-test" --tap
    for t in x86_64 aarch64; do
        export QTEST_QEMU_BINARY="$qemu_build/qemu-system-$t"
        run_tap "qtest-$t-device-introspect" \
            "$qemu_build/tests/qtest/device-introspect-test" --tap
        run_tap "qtest-$t-qom" "$qemu_build/tests/qtest/qom-test" --tap
    done

    echo "== QEMU $v: host side: libmemexpose and memexpose-host against QEMU"
    MEMEXPOSE_DMA_ENGINE="$mx_build/contrib/examples/dma-engine" \
    run_tap host-libmemexpose "$mx_build/contrib/test-host" \
        "$qemu_build/qemu-system-x86_64" \
        "$mx_build/contrib/memexpose-host/memexpose-host" \
        "$qemu_build/qemu-system-aarch64" \
        "$top/build/firmware/memexpose-fw-aarch64.bin"
    # The Python binding; the library carries build/mx's sanitizers.
    run_tap host-python env PYTHONPATH="$top/contrib/python" \
        LIBMEMEXPOSE="$mx_build/contrib/libmemexpose/libmemexpose.so" \
        LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)" \
        ASAN_OPTIONS=detect_leaks=0 \
        python3 "$top/tests/host/test_python.py" "$qemu_build/qemu-system-x86_64"

    echo "== QEMU $v: the examples of README.md and the user guide, as written"
    run_tap doc-examples python3 "$top/tests/docs/run-doc-examples.py" \
        "$qemu_build/qemu-system-x86_64" "$qemu_build/qemu-system-aarch64" \
        "$mx_build/contrib/memexpose-host/memexpose-host" \
        "$top/build/firmware/memexpose-fw-aarch64.bin"

    echo "== QEMU $v: guests: two Linux VMs linked by memexpose-pci"
    run_tap guest-scenarios sh "$top/tests/guest/run.sh" \
        --workdir "$guest_work/scenarios"
    echo "== QEMU $v: guests: a Linux guest drives the host's out-of-process DMA engine"
    MEMEXPOSE_DMA_ENGINE="$mx_build/contrib/examples/dma-engine" \
        run_tap guest-dma sh "$top/tests/guest/run.sh" --dma \
        --workdir "$guest_work/dma"
    echo "== QEMU $v: libvirt: two linked domains started by a real libvirtd"
    # The initramfs is the one guest-scenarios just built.
    run_tap libvirt python3 "$top/tests/libvirt/run-libvirt.py" \
        --initrd "$top/build/guest/initramfs.cpio.gz" \
        --workdir "$guest_work/libvirt"
    echo "== QEMU $v: guests: an x86_64 Linux master boots an aarch64 slave"
    run_tap guest-amp sh "$top/tests/guest/run.sh" --amp --tap \
        --workdir "$guest_work/amp"
    echo "== QEMU $v: guests: x86_64 Linux (memexpose-pci) and aarch64 Linux (memexpose-sysbus)"
    run_tap guest-arm64 sh "$top/tests/guest/run.sh" --arm64 \
        --workdir "$guest_work/arm64"

    tally="$tally QEMU $v: $((passed - before_passed)) passed, $((failed - before_failed)) failed;"
    # Name the failures by series.
    new=${failures#"$failures_before"}
    failures=$failures_before
    for f in $new; do
        failures="$failures $v/$f"
    done
done

echo "check:$tally"
echo "check: $passed passed, $failed failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")"
[ -z "$failures" ] || echo "failed:$failures"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
