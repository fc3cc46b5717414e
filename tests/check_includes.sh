#!/bin/sh
# Fails on an #include "x/..." edge that STYLE.md's dependency table does not
# allow, on an include of another folder's internal header, and on a
# third-party header outside the folder that owns it.
root=${1:-.}
cd "$root" || exit 2
allowed() {
    case "$1" in
    base) echo "base" ;;
    store | chunking | gpu | eval) echo "base $1" ;;
    generation) echo "base gpu generation" ;;
    retrieval) echo "base store gpu retrieval" ;;
    cmd | tests | bench) echo "base store chunking gpu generation retrieval eval cmd tests bench" ;;
    esac
}
status=0
for f in $(git ls-files '*.c' '*.h' '*.cu' 2>/dev/null || find . -name '*.[ch]'); do
    dir=${f%%/*}
    ok=$(allowed "$dir")
    [ -n "$ok" ] || continue
    for inc in $(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([a-z_]*\/[a-z_./]*\)".*/\1/p' "$f"); do
        to=${inc%%/*}
        case " $ok " in
        *" $to "*) ;;
        *) echo "$f: '$dir' may not include '$inc'"; status=1 ;;
        esac
        if [ "$to" != "$dir" ] && [ "$inc" != "$to/$to.h" ] && [ "$dir" != tests ] && [ "$dir" != bench ]; then
            echo "$f: '$inc' is internal to '$to'"; status=1
        fi
    done
    check_tp() {
        if grep -q "^#[[:space:]]*include[[:space:]]*<$1" "$f"; then
            case " $2 " in *" $dir "*) ;; *) echo "$f: <$1> belongs in $2"; status=1 ;; esac
        fi
    }
    check_tp sqlite3.h "store"
    check_tp pcre2.h "chunking generation" # the BPE pre-tokenizer regexes live in generation/
    check_tp faiss/ "retrieval"
    check_tp cuda "gpu"
    check_tp cjson/ "cmd eval tests bench"
done
exit $status
