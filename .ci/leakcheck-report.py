#!/usr/bin/env python3
"""The closing lines of .ci/leakcheck: every sanitizer report the checked processes wrote (one
file per process, ASan's and UBSan's log_path), which suppressions matched, and the tests that
failed without a report. Exits 1 when any process reported a leak or another sanitizer error.

    leakcheck-report.py --reports DIR --testlog build/meson-logs/leakcheck.json --tests-failed 0|1
"""
import argparse
import json
import os
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", required=True)
    ap.add_argument("--testlog", required=True)
    ap.add_argument("--tests-failed", type=int, default=0)
    args = ap.parse_args()

    findings, matched = [], {}
    for name in sorted(os.listdir(args.reports)):
        path = os.path.join(args.reports, name)
        with open(path, errors="replace") as f:
            text = f.read()
        # LeakSanitizer prints the suppressions it used (print_suppressions=1) even when nothing
        # was left to report: count them, they are what docs/SECURITY.md explains.
        block = re.search(r"Suppressions used:\n.*?\n((?:\s*\d+\s+\d+\s+\S+\n)*)", text)
        for count, bytes_, supp in re.findall(r"(\d+)\s+(\d+)\s+(\S+)", block.group(1) if block else ""):
            m = matched.setdefault(supp, [0, 0])
            m[0] += int(count)
            m[1] += int(bytes_)
        if re.search(r"ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:", text):
            summary = re.findall(r"^SUMMARY: .*$", text, re.M)
            findings.append((path, summary[-1] if summary else "(no summary line)"))

    failed_tests = []
    if os.path.exists(args.testlog):
        with open(args.testlog) as f:
            for line in f:
                r = json.loads(line)
                if r.get("result") == "TIMEOUT":
                    # Killed before exit: LeakSanitizer never ran in it, so it is not checked.
                    failed_tests.append(f"{r['name']} (TIMEOUT: not leak-checked)")
                elif r.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL"):
                    failed_tests.append(f"{r['name']} ({r['result']})")

    for supp, (count, bytes_) in sorted(matched.items()):
        print(f"leakcheck: suppressed {count} allocation(s), {bytes_} bytes: {supp}")
    for path, summary in findings:
        print(f"leakcheck: FINDING {summary}\n  report: {path}")
    if failed_tests and not findings:
        print("leakcheck: tests that failed without a sanitizer report (not a leak; under full "
              "unwinding usually a wall-clock bound, which the normal sanitizer stage checks): "
              + ", ".join(failed_tests))
    elif args.tests_failed and not failed_tests and not findings:
        print(f"leakcheck: meson test failed but {args.testlog} lists no failed test")
    if findings:
        print(f"leakcheck: {len(findings)} process(es) with sanitizer findings")
        return 1
    print("leakcheck: no leaks and no sanitizer errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
