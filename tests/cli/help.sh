# help.sh — every subcommand answers --help with a usage line and exit 0;
# unknown commands and options exit 2 with a message.
. "$(dirname "$0")/../cli_lib/common.sh"
expect_ok "$PN" --help
check "top-level help lists commands" grep -q "commands:" "$TMP/out"
for c in $("$PN" --help | awk '/^commands:/{f=1;next} f && /^  [a-z]/{print $1}'); do
    expect_ok "$PN" "$c" --help
    check "$c --help prints usage" grep -q "usage: postnas $c" "$TMP/out"
done
expect_fail 2 "unknown command 'frobnicate'" "$PN" frobnicate
expect_fail 2 "unknown option '--bogus'" "$PN" info --bogus
expect_fail 2 "--log expects" "$PN" --log loud info
finish
