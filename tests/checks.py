"""cmocka-style checks for the Python-driven test programs, so that
scripts/count_results.py counts each check as cmocka's summaries are counted.

    @check("what it shows")
    def _(): ...          # runs at once; an exception fails the check
    sys.exit(summary())
"""
import importlib
import os
import sys

passed, failed = [], []


def require(module, package):
    """The imported module, or the end of the program: exit 77 (a meson
    SKIP) with the reason, or 1 (a failure) where CI is set, since the
    suite's set-up installs `package` there and its absence is a fault."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        ci = bool(os.environ.get("CI"))
        print(f"{'FAIL' if ci else 'SKIP'}: {module} is not importable by {sys.executable} ({e}); "
              f"apt install {package}")
        sys.exit(1 if ci else 77)


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
