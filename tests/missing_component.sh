#!/bin/sh
# Stands in for a test that meson could not define because a component is missing.
#   missing_component.sh TEST WHAT
# Outside CI: prints why and exits 77 (meson counts a skip). With CI=true: fails, naming WHAT.
name=$1; what=$2
if [ "${CI:-}" = true ]; then
  echo "$name: CI=true, and this test cannot run: $what" >&2
  exit 1
fi
echo "$name skipped: $what" >&2
[ -n "${PP_SKIP_LOG:-}" ] && echo "$name: $what" >>"$PP_SKIP_LOG"
exit 77
