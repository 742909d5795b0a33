# Shared by overlay.sh and export-patches.sh: parse patches/series.
# Sourced, not run, with $top (this repository) and $tree (the QEMU tree)
# set.  Calls, in order, for each line of the series:
#   on_patch SUBJECT     on_body TEXT     on_hook DIFF
#   on_file OURS QEMU    (our file OURS goes to QEMU's path QEMU)
# and on_end after the last line.  Callers define the handlers.
# DIFF is patches/SERIES/NAME when the QEMU release series of $tree has
# its own copy of hook NAME (the QEMU file differs there), else
# patches/NAME.

series_file=${series_file:-$top/patches/series}
qemu_series=$(sh "$top/scripts/qemu-version.sh" "$tree")

series_hook_diff() {
    if [ -f "$top/patches/$qemu_series/$1" ]; then
        echo "$top/patches/$qemu_series/$1"
    else
        echo "$top/patches/$1"
    fi
}

series_walk() {
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        ''|'#'*) ;;
        '['*']') line=${line#\[}; on_patch "${line%\]}" ;;
        '>'*) line=${line#>}; on_body "${line# }" ;;
        'hook '*) on_hook "$(series_hook_diff "${line#hook }")" ;;
        *' -> '*) on_file "${line%% -> *}" "${line#* -> }" ;;
        *) on_file "$line" "$line" ;;
        esac
    done < "$series_file"
    on_end
}

# Every file of ours that goes into QEMU must be in the series.
series_check_complete() {
    listed=$(mktemp)
    grep -vE '^(#|\[|>|hook |$)' "$series_file" | sed 's/ -> .*//' |
        sort >"$listed"
    missing=$(cd "$top" &&
              git ls-files -co --exclude-standard -- \
                  hw memory include docs/specs docs/system tests/qtest |
              sort | comm -23 - "$listed")
    rm -f "$listed"
    if [ -n "$missing" ]; then
        echo "series: not listed in patches/series:" $missing >&2
        return 1
    fi
}
