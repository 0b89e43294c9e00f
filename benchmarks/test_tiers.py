"""Where the test suite's time goes, tier by tier, from a pytest JUnit XML file.

    pytest --junitxml=/tmp/quick.xml                # the quick tier (a plain pytest)
    pytest --full --junitxml=/tmp/full.xml          # every tier, as CI runs it
    python benchmarks/test_tiers.py /tmp/quick.xml  # count and seconds per tier, slowest quick tests
    python benchmarks/test_tiers.py /tmp/full.xml --slowest 30

The tiers are the markers of pyproject.toml (world, sweep, slow; a test with none is quick).
tests/conftest.py writes each test's tier into the XML as a <property name="tier">; for an XML
without them (written before, or by another tree) the tiers are read by collecting this tree's
tests (`pytest --collect-only --full`), matched by file name and test name.

A testcase's time is its set-up, call and tear-down, so a module- or session-scoped fixture's
set-up (a checkpoint built, a run trained) is charged to the first test that uses it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

TIERS = ("quick", "world", "sweep", "slow")


def read_cases(path: Path) -> list[dict]:
    """One dict per testcase: file (its file name), name, time, tier (None when not recorded),
    outcome (passed, failed, error, skipped)."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        classname = case.get("classname", "")
        # pytest writes classname as the module path with dots (plus any class names)
        parts = [p for p in classname.split(".") if p and not p[:1].isupper()]
        module = parts[-1] if parts else case.get("name", "")
        tier = None
        for prop in case.iter("property"):
            if prop.get("name") == "tier":
                tier = prop.get("value")
        outcome = "passed"
        for kind in ("failure", "error", "skipped"):
            if case.find(kind) is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
        cases.append(
            {
                "file": module + ".py",
                "name": case.get("name", ""),
                "time": float(case.get("time") or 0.0),
                "tier": tier,
                "outcome": outcome,
            }
        )
    return cases


def collected_tiers(root: Path) -> dict[tuple[str, str], str]:
    """(file name, test name) -> tier, from collecting the tests under `root` (every tier)."""
    import pytest

    found: dict[tuple[str, str], str] = {}

    class Collector:
        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(self, items):
            for item in items:
                tier = next((t for t in TIERS[1:] if item.get_closest_marker(t)), "quick")
                found[(Path(str(item.path)).name, item.name)] = tier

    args = ["--collect-only", "-q", "--full", "-p", "no:cacheprovider", str(root / "tests")]
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(args, plugins=[Collector()])
    if code not in (0, 5) and not found:
        sys.exit(f"collecting {root / 'tests'} failed (pytest exit code {code})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xml", type=Path, help="a pytest --junitxml file")
    parser.add_argument("--slowest", type=int, default=15, help="how many quick tests to list")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the tree whose tests give the tiers when the XML has none (default: this one)",
    )
    args = parser.parse_args(argv)
    cases = read_cases(args.xml)
    if not cases:
        sys.exit(f"{args.xml}: no testcase")
    unmatched = 0
    if any(c["tier"] is None for c in cases):
        tiers = collected_tiers(args.root)
        for c in cases:
            if c["tier"] is None:
                c["tier"] = tiers.get((c["file"], c["name"]))
                unmatched += c["tier"] is None
    suite = ET.parse(args.xml).getroot().find(".//testsuite")
    wall = float(suite.get("time", 0.0)) if suite is not None else 0.0

    count: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    for c in cases:
        tier = c["tier"] or "unknown"
        count[tier] += 1
        seconds[tier] += c["time"]
    total = sum(seconds.values())
    print(f"{args.xml}: {len(cases)} tests, {total:.1f} s of test time, {wall:.1f} s wall")
    print(f"{'tier':<8} {'tests':>6} {'seconds':>9} {'share':>6}")
    for tier in [*TIERS, "unknown"]:
        if count[tier] or tier in TIERS:
            share = seconds[tier] / total if total else 0.0
            print(f"{tier:<8} {count[tier]:>6} {seconds[tier]:>9.1f} {share:>6.0%}")
    if unmatched:
        print(f"({unmatched} tests of the XML are not in {args.root / 'tests'}: tier unknown)")

    quick = sorted((c for c in cases if c["tier"] == "quick"), key=lambda c: -c["time"])
    if quick:
        print(f"\nthe {min(args.slowest, len(quick))} slowest quick-tier tests:")
        for c in quick[: args.slowest]:
            mark = "" if c["outcome"] == "passed" else f"  ({c['outcome']})"
            print(f"{c['time']:>7.2f} s  {c['file']}::{c['name']}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
