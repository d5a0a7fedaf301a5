"""cmocka-style checks for the Python-driven test programs, so that
scripts/count_results.py counts each check as cmocka's summaries are counted.

    @check("what it shows")
    def _(): ...          # runs at once; an exception fails the check
    sys.exit(summary())
"""
passed, failed = [], []


def check(name):
    def deco(fn):
        try:
            fn()
            passed.append(name)
            print(f"[       OK ] {name}")
        except Exception as e:  # noqa: BLE001 - report and go on
            failed.append(name)
            print(f"[  FAILED  ] {name}: {type(e).__name__}: {e}")
        return fn
    return deco


def summary():
    """Print the summary lines; the exit status for sys.exit."""
    print(f"[==========] {len(passed) + len(failed)} test(s) run.")
    print(f"[  PASSED  ] {len(passed)} test(s).")
    if failed:
        print(f"[  FAILED  ] {len(failed)} test(s), listed below:")
        for name in failed:
            print(f"[  FAILED  ] {name}")
    return 1 if failed else 0
