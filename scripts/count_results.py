#!/usr/bin/env python3
"""Sum test results over meson testlog.json files and print the last line
"N passed, N failed" that CI reads.  cmocka binaries count each of their
tests (from cmocka's own summary); other tests count once.  A binary that
crashed before its summary counts as one failure."""
import json
import re
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    if path.startswith("BUILD_FAILED:"):
        print(f"{path[13:]}: build failed", file=sys.stderr)
        failed += 1
        continue
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print(f"{path}: {e}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        ok = t["result"] == "OK"
        p = sum(int(n) for n in re.findall(r"\[  PASSED  \] (\d+) test", out))
        f = sum(int(n) for n in re.findall(r"\[  FAILED  \] (\d+) test", out))
        s = sum(int(n) for n in re.findall(r"\[  SKIPPED \] (\d+) test", out))
        if p or f or s:
            if not ok and f == 0:
                f = 1
            passed, failed, skipped = passed + p, failed + f, skipped + s
        elif t["result"] == "SKIP":
            skipped += 1
        elif ok:
            passed += 1
        else:
            failed += 1
        if not ok:
            print(f"FAILED: {t['name']} ({t['result']}) in {path}", file=sys.stderr)
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
