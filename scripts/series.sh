# Shared by overlay.sh and export-patches.sh: parse patches/series.
# Sourced, not run.  Calls, in order, for each line of the series:
#   on_patch SUBJECT     on_body TEXT     on_hook NAME     on_file PATH
# and on_end after the last line.  Callers define the four handlers.

series_file=${series_file:-$top/patches/series}

series_walk() {
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
        ''|'#'*) ;;
        '['*']') line=${line#\[}; on_patch "${line%\]}" ;;
        '>'*) line=${line#>}; on_body "${line# }" ;;
        'hook '*) on_hook "${line#hook }" ;;
        *) on_file "$line" ;;
        esac
    done < "$series_file"
    on_end
}

# Every file of ours that lives at a QEMU path must be in the series.
series_check_complete() {
    listed=$(mktemp)
    grep -vE '^(#|\[|>|hook |$)' "$series_file" | sort >"$listed"
    missing=$(cd "$top" &&
              git ls-files -co --exclude-standard -- \
                  hw include docs/specs docs/system tests/qtest |
              sort | comm -23 - "$listed")
    rm -f "$listed"
    if [ -n "$missing" ]; then
        echo "series: not listed in patches/series:" $missing >&2
        return 1
    fi
}
