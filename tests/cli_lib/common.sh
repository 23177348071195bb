# common.sh — helpers sourced by tests/cli/*.sh.
#
# expect_fail CODE PATTERN CMD...: runs CMD, asserts its exit code is CODE and its
# stderr matches the extended regex PATTERN. expect_ok CMD...: exit code 0.
set -u
PN=${POSTNAS_BIN:-build/postnas}
FX=${POSTNAS_FIXTURES:-../shared/fixtures}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PASS=0
FAIL=0

expect_fail() {
    local code=$1 pat=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq "$code" ] && grep -Eq -- "$pat" "$TMP/err"; then
        PASS=$((PASS + 1))
    else
        FAIL=$((FAIL + 1))
        echo "FAIL: '$*' -> exit $rc (want $code), stderr:" >&2
        sed 's/^/    /' "$TMP/err" >&2
        echo "    (wanted /$pat/)" >&2
    fi
}

expect_ok() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        PASS=$((PASS + 1))
    else
        FAIL=$((FAIL + 1))
        echo "FAIL: '$*' -> exit $rc (want 0), stderr:" >&2
        sed 's/^/    /' "$TMP/err" >&2
    fi
}

check() {  # check "description" <command that must succeed>
    local what=$1
    shift
    if "$@"; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); echo "FAIL: $what" >&2; fi
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
