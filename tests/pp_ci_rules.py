"""pytest rules shared by every pixelpass pytest suite (loaded with `-p pp_ci_rules`).

A test that cannot run because a component is missing calls pytest.skip (or skipif) with a reason
naming what is missing. Outside CI that stays a skip, and the reason is appended to the file named
by PP_SKIP_LOG, so the closing summary (scripts/test-summary.py) can say how many were skipped and
why. With CI=true a skip would hide a failure: it is reported as a failure with the same reason.

Tests that only run as a benchmark carry `@pytest.mark.benchmark` and are deselected (not skipped)
unless PIXELPASS_NETSIM_FULL=1 or PIXELPASS_BENCHMARK=1 is set.
"""
import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
BENCHMARK = os.environ.get("PIXELPASS_NETSIM_FULL") == "1" or os.environ.get("PIXELPASS_BENCHMARK") == "1"


def pytest_configure(config):
    config.addinivalue_line("markers", "benchmark: runs only under `meson test --benchmark`")


def pytest_collection_modifyitems(config, items):
    if BENCHMARK:
        return
    keep = [item for item in items if item.get_closest_marker("benchmark") is None]
    dropped = [item for item in items if item.get_closest_marker("benchmark") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    if IN_CI:
        report.outcome = "failed"
        report.longrepr = f"CI=true, and {item.nodeid} cannot run: {reason}"
        return
    log = os.environ.get("PP_SKIP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{item.nodeid}: {reason}\n")
