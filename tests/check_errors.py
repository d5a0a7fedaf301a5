#!/usr/bin/env python3
"""Do the headers document every error code the library can return?

For each public function returning wm_status, the codes its documentation
names (every WM_ERR_* in the comment block before its declaration, and those
of a public function it defers to with "as wm_foo" or "wm_foo's") must
include the codes its implementation can return.  The implementation's
codes are found statically: every WM_ERR_* written in the body of the
function, and, transitively, in the bodies of the library functions it calls
(any identifier followed by "(" that names a function defined in libwm/
that returns a wm_status: other functions pass no code on).

Limits, all on the side of asking for more documentation, never less: a code
in a branch that cannot run, or returned by a callee whose status the caller
replaces, still counts; calls through function pointers (scheme methods,
kernels) are not followed, and those methods return no status.  Macros are
not expanded: a WM_ERR_* a macro body spells is found where the macro is
defined only if it is defined inside a function.  WM_ERR_ARG is always
allowed (every call refuses bad arguments, common.h).

usage: check_errors.py SOURCE_ROOT [--list]"""
import glob
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
ERR = re.compile(r"\bWM_ERR_[A-Z]+\b")


def strip_strings(src):
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', src)


def doc_before(text):
    """The comments that end `text` after its last code (a declaration's
    documentation, however many blocks)."""
    blocks = list(re.finditer(r"/\*.*?\*/", text, re.S))
    code_end = 0
    for i, ch in enumerate(text):
        if ch in ";}" and not any(b.start() <= i < b.end() for b in blocks):
            code_end = i
    return " ".join(b.group(0) for b in blocks if b.start() > code_end)


def public_docs():
    """{function: set of documented codes}, and {function: functions its doc defers to}."""
    docs, defers = {}, {}
    for h in sorted(glob.glob(os.path.join(ROOT, "include", "wm", "*.h"))):
        src = open(h).read()
        # each declaration with the text since the previous one's end
        last = 0
        for m in re.finditer(r"WM_API\s+(?:WM_NODISCARD\s+)?wm_status\s+(wm_\w+)\s*\(", src):
            name = m.group(1)
            comments = doc_before(src[last:m.start()])
            last = src.index(";", m.end())
            docs[name] = set(ERR.findall(comments))
            defers[name] = set(re.findall(r"\b(wm_[a-z0-9_]+?)(?:'s\b|\b)", comments)) - {name}
    return docs, defers


def definitions():
    """{function: body} of every function defined in libwm/ that returns a
    wm_status (only those pass a code on to their callers)."""
    defs = {}
    for c in glob.glob(os.path.join(ROOT, "libwm", "**", "*.c"), recursive=True):
        src = strip_strings(re.sub(r"/\*.*?\*/", " ", open(c).read(), flags=re.S))
        for m in re.finditer(r"^(?:static\s+)?(?:inline\s+)?wm_status\s+(\w+)\s*\([^;{]*?\)\s*\{", src, re.M):
            depth, i = 1, m.end()
            while depth and i < len(src):
                depth += {"{": 1, "}": -1}.get(src[i], 0)
                i += 1
            defs.setdefault(m.group(1), "")
            defs[m.group(1)] += src[m.end():i]
    return defs


def reachable(defs):
    direct = {f: set(ERR.findall(b)) for f, b in defs.items()}
    calls = {f: set(re.findall(r"\b(\w+)\s*\(", b)) & set(defs) for f, b in defs.items()}
    memo = {}

    def codes(f, seen):
        if f in memo:
            return memo[f]
        out = set(direct[f])
        for g in calls[f] - seen:
            out |= codes(g, seen | {g})
        if not seen - {f}:
            memo[f] = out
        return out

    return {f: codes(f, {f}) for f in defs}


def main():
    docs, defers = public_docs()
    reach = reachable(definitions())
    bad = 0
    for f in sorted(docs):
        documented = set(docs[f]) | {"WM_ERR_ARG"}
        for g in defers[f]:
            documented |= docs.get(g, set())
        if f not in reach:
            print(f"{f}: declared but not defined in libwm/")
            bad += 1
            continue
        missing = reach[f] - documented
        if "--list" in sys.argv:
            print(f"{f}: documented {sorted(documented)} reachable {sorted(reach[f])}")
        if missing:
            print(f"{f}: can return {', '.join(sorted(missing))}, which its documentation does not name")
            bad += 1
    print(f"check_errors: {len(docs)} functions, {bad} with undocumented error codes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
