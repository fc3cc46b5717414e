# tests/cli/lib.sh - a tiny TAP harness for the end-to-end tests: each check
# prints "ok N - what" or "not ok N - what" with the evidence, and done_testing
# prints the plan and sets the exit status.
n=0
failed=0
RAG=${RAG:?RAG must name the rag binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/ragcli.XXXXXX")
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' EXIT
export RAG_STORE="$T/store"

ok() { # ok DESCRIPTION COMMAND...: the command must succeed
    desc=$1
    shift
    n=$((n + 1))
    if "$@" >"$T/.out" 2>&1; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc"
        sed 's/^/# /' "$T/.out"
        failed=$((failed + 1))
    fi
}

is() { # is DESCRIPTION GOT EXPECTED
    n=$((n + 1))
    if [ "$2" = "$3" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        printf '# got:      %s\n# expected: %s\n' "$2" "$3"
        failed=$((failed + 1))
    fi
}

like() { # like DESCRIPTION TEXT PATTERN (grep -E)
    n=$((n + 1))
    if printf '%s\n' "$2" | grep -Eq -- "$3"; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1"
        printf '# text:    %s\n# pattern: %s\n' "$2" "$3"
        failed=$((failed + 1))
    fi
}

# run ARGS...: run rag, keeping stdout in $out, stderr in $err, status in $rc.
run() {
    set +e
    "$RAG" "$@" >"$T/.stdout" 2>"$T/.stderr"
    rc=$?
    set -e
    out=$(cat "$T/.stdout")
    err=$(cat "$T/.stderr")
}

# jget JSON EXPR: evaluate a Python expression on the parsed JSON document j.
jget() {
    python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# count the JSON Lines in $out whose status is $1.
count_status() {
    printf '%s\n' "$out" | grep -c "\"status\":\"$1\"" || true
}

done_testing() {
    echo "1..$n"
    [ "$failed" -eq 0 ]
}
