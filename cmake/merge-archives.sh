#!/usr/bin/env bash
# merge-archives.sh OUT.a AR IN.a... -- OBJ.o...: one static archive of the
# members of several (GNU ar's MRI script), for liblazyroot.a.
set -euo pipefail
out=$1 ar=$2
shift 2
script="create $out.tmp"$'\n'
while (($#)) && [[ $1 != -- ]]; do script+="addlib $1"$'\n'; shift; done
[[ ${1:-} == -- ]] && shift
for o in "$@"; do script+="addmod $o"$'\n'; done
script+=$'save\nend\n'
rm -f "$out.tmp"
printf '%s' "$script" | "$ar" -M
mv -f "$out.tmp" "$out"
