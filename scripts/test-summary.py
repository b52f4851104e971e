#!/usr/bin/env python3
"""Prints the closing lines for meson test logs: 'tests: N passed, N failed, N skipped', then, when
anything was skipped, how many cases inside the suites were skipped and why.

  test-summary.py TESTLOG.json [--skips SKIPS.txt]

SKIPS.txt is the PP_SKIP_LOG file that the pytest rules (tests/pp_ci_rules.py), the Catch2 helper
(tests/unit/skip.hpp) and tests/missing_component.sh append to: one 'test: reason' line per skip.
Exits non-zero when any test failed or no test ran at all."""
import json
import sys

args = sys.argv[1:]
skips_path = None
if "--skips" in args:
    i = args.index("--skips")
    skips_path = args[i + 1]
    del args[i:i + 2]

passed = failed = skipped = 0
for path in args:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"test-summary: cannot read {path}: {e.strerror}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        result = json.loads(line).get("result", "")
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")

reasons = []
if skips_path:
    try:
        reasons = [l for l in open(skips_path, encoding="utf-8").read().splitlines() if l.strip()]
    except FileNotFoundError:
        pass
if reasons:
    print(f"skipped inside the suites: {len(reasons)} (with CI=true each would fail)")
    for line in reasons:
        print(f"  skipped: {line}")
sys.exit(1 if failed or passed == 0 else 0)
