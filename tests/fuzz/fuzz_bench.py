#!/usr/bin/env python3
"""The `fuzz` benchmark: runs every libFuzzer target to a number of executions (10 M by default),
one after the other with -jobs=1 (the machine is shared), and prints one line per target with the
executions, the time, the rate and the crashes. Exits non-zero when a target crashed (libFuzzer's
reproducer is left in the output directory) or stopped before its executions.

    fuzz_bench.py --runs 10000000 --out DIR TARGET_EXE:CORPUS_DIR ...
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time


def run(exe: str, seeds: str, runs: int, out: str, max_seconds: int) -> dict:
    name = os.path.basename(exe).removesuffix("_fuzz")
    work = os.path.join(out, "corpus-" + name)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seeds, work)
    cmd = [exe, f"-runs={runs}", "-print_final_stats=1", "-error_exitcode=1",
           f"-artifact_prefix={out}/{name}-", work, seeds]
    if max_seconds:
        cmd.insert(1, f"-max_total_time={max_seconds}")
    env = dict(os.environ, UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          errors="replace")
    seconds = time.monotonic() - start
    log = proc.stdout
    with open(os.path.join(out, name + ".log"), "w") as f:
        f.write(log)
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    executed = int(m.group(1)) if m else 0
    crashed = proc.returncode != 0
    # The edges of the parser libFuzzer reached (its last "cov:"): a target that stays near its
    # starting figure is not seeing the parser (tests/fuzz/covers_parser.sh checks that).
    covs = re.findall(r"\bcov: (\d+)", log)
    return {"target": name, "executions": executed, "seconds": seconds, "crashes": 1 if crashed else 0,
            "rc": proc.returncode, "corpus": len(os.listdir(work)), "edges": int(covs[-1]) if covs else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000_000)
    ap.add_argument("--max-seconds", type=int, default=0, help="stop a target after this long (0: no limit)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", action="append", default=[], help="run only these targets (by name)")
    ap.add_argument("targets", nargs="+", help="EXE:SEED_DIR")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    failed = False
    print(f"{'target':<15} {'executions':>12} {'seconds':>8} {'exec/s':>8} {'crashes':>7} {'edges':>6} corpus",
          flush=True)
    for spec in args.targets:
        exe, seeds = spec.split(":", 1)
        name = os.path.basename(exe).removesuffix("_fuzz")
        if args.only and name not in args.only:
            continue
        r = run(exe, seeds, args.runs, args.out, args.max_seconds)
        rate = r["executions"] / r["seconds"] if r["seconds"] else 0
        short = r["executions"] < args.runs
        print(f"{r['target']:<15} {r['executions']:>12} {r['seconds']:>8.0f} {rate:>8.0f} {r['crashes']:>7} {r['edges']:>6} "
              f"{r['corpus']}{'  (stopped before ' + str(args.runs) + ')' if short else ''}", flush=True)
        if r["crashes"]:
            print(f"  {r['target']}: libFuzzer exit {r['rc']}; see {args.out}/{r['target']}.log", flush=True)
        failed |= bool(r["crashes"]) or short
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
