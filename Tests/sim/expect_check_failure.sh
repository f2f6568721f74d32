#!/bin/sh
# expect_check_failure.sh PROGRAM [ARGS...]
#
# Runs a test program built against a mutant and passes only if the
# program fails one of its CHECKs: the proof that the test catches the
# break.  A program that passes, or dies some other way (a crash, a
# sanitizer report), fails this check: that is not the test catching the
# mutant.
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out" | tail -n 3
if [ "$rc" -eq 0 ]; then
    echo "expect_check_failure: $1 passed: the mutant went unnoticed" >&2
    exit 1
fi
case $out in
*"CHECK failed"*) ;;
*)
    echo "expect_check_failure: $1 failed (status $rc) without a CHECK failure" >&2
    exit 1
    ;;
esac
case $out in
*"ERROR: AddressSanitizer"* | *"runtime error:"* | *"WARNING: ThreadSanitizer"*)
    echo "expect_check_failure: $1: a sanitizer report besides the CHECK" >&2
    exit 1
    ;;
esac
exit 0
