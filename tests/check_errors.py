#!/usr/bin/env python3
"""Do the headers hold the whole contract, error codes first?

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

The same run checks the rest of the header contract (common.h, "Thread
safety" and "Out-parameters") on every public function, whatever it returns:
  - a function that returns a value says what with "@return";
  - it carries one of the thread-safety sentences common.h lists;
  - every out-parameter is named in an "OUT:" (or "IN/OUT:") list, such as
    "OUT: *out, *n_ids." An out-parameter is a parameter whose pointee is
    not const (T *, T **, T x[N]), except wm_error *err (common.h says how
    it is written) and a pointer to an opaque handle (the object the call
    works on: wm_corpus *c);
  - a function that returns a pointer, or hands one out through a T **
    out-parameter, says who owns it ("owned by the caller", "static",
    "belongs to", "points into", "borrows").

And the pages they cite: every docs/PAGE.md#anchor named in the headers,
the CLI's sources (its --help texts) and python/libwm must be a page with
that heading (scripts/check_docs.py's slugs; it checks the Markdown's own
links), and none may cite "the README" for details, which live in docs/.

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


def declarations():
    """(name, return type, parameter list, documentation) of each public
    function declared in include/wm/*.h, in order."""
    for h in sorted(glob.glob(os.path.join(ROOT, "include", "wm", "*.h"))):
        src = open(h).read()
        last = 0
        for m in re.finditer(r"WM_API\s+(?:WM_NODISCARD\s+)?([^;(]*?)\b(wm_\w+)\s*\(([^;]*?)\)\s*;", src, re.S):
            yield m.group(2), m.group(1).strip(), m.group(3), doc_before(src[last:m.start()])
            last = m.end()


def public_docs():
    """{function: set of documented codes}, and {function: functions its doc defers to}."""
    docs, defers = {}, {}
    for name, ret, _, comments in declarations():
        if ret != "wm_status":
            continue
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


# The sentences common.h ("Thread safety") allows, and nothing vaguer.
THREAD = re.compile(r"(?<![Nn]ot )\b[Tt]hread-safe(?: for distinct [^.]+| with other readers of [^.]+)?\."
                    r"|\b[Nn]ot thread-safe: (?:one thread at a time per|no other thread may use) [^.]+\.")
OWNED = re.compile(r"owned by the caller|\bstatic\b|belongs to|point(?:s|ing)? into|\bborrows\b")
OUT_LIST = re.compile(r"\bOUT:\s*(\*?\w+(?:\[[^\]]*\])?(?:\s*,\s*\*?\w+(?:\[[^\]]*\])?)*)")


def handles():
    """The opaque handle types: declared, never defined, in the headers."""
    names = {"llama_sampler"}
    for h in glob.glob(os.path.join(ROOT, "include", "wm", "*.h")):
        names |= set(re.findall(r"typedef struct (\w+) \1;", open(h).read()))
    return names


def out_params(params, opaque):
    """Names of the parameters a call may write through."""
    outs = []
    for p in params.split(","):
        p = p.strip()
        m = re.match(r"(.*?)\b(\w+)\s*(\[[^\]]*\])?$", p, re.S)
        if not m or p == "void":
            continue
        typ, name, array = m.group(1).strip(), m.group(2), m.group(3)
        if array:
            pointee = typ
        elif typ.endswith("*"):
            pointee = typ[:-1].strip()
        else:
            continue
        if (pointee.endswith("const") or ("*" not in pointee and re.search(r"\bconst\b", pointee))
                or (name == "err" and pointee == "wm_error")
                or re.sub(r"^struct\s+", "", pointee) in opaque):
            continue
        outs.append((name, pointee.endswith("*")))
    return outs


def contract():
    """Functions whose documentation misses part of the contract, with why."""
    opaque, bad, n = handles(), [], 0
    for name, ret, params, doc in declarations():
        n += 1
        doc = re.sub(r"\s*\n\s*\*\s*", " ", doc)
        why = []
        if ret != "void" and "@return" not in doc:
            why.append("no @return")
        if not THREAD.search(doc):
            why.append("no thread-safety sentence")
        marked = set()
        for lst in OUT_LIST.findall(doc):
            marked |= set(re.findall(r"\*?(\w+)", lst))
        outs = out_params(params, opaque)
        missing = [p for p, _ in outs if p not in marked]
        if missing:
            why.append("out-parameter " + ", ".join(missing) + " not in an OUT: list")
        if (ret.endswith("*") or any(pp for _, pp in outs)) and not OWNED.search(doc):
            why.append("does not say who owns the pointer it hands out")
        if why:
            bad.append(f"{name}: {'; '.join(why)}")
    return n, bad


def citations():
    """Citations of docs/ pages outside Markdown that lead nowhere."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("check_docs", os.path.join(ROOT, "scripts", "check_docs.py"))
    check_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_docs)
    bad = []
    for pattern in ("include/wm.h", "include/wm/*.h", "libwm/cli/*.c", "python/libwm/*.py"):
        for f in sorted(glob.glob(os.path.join(ROOT, pattern))):
            rel = os.path.relpath(f, ROOT)
            for no, line in enumerate(open(f), 1):
                if re.search(r"(?<![/\w])README\b", line):
                    bad.append(f"{rel}:{no}: cites the README; details live in docs/")
                for page, anchor in re.findall(r"\b(docs/[\w./-]*\w\.md)(?:#([\w-]+))?", line):
                    path = os.path.join(ROOT, page)
                    if not os.path.isfile(path):
                        bad.append(f"{rel}:{no}: {page} does not exist")
                    elif anchor and anchor not in check_docs.anchors_of(path):
                        bad.append(f"{rel}:{no}: no heading with anchor #{anchor} in {page}")
    return bad


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
    n, incomplete = contract()
    for line in incomplete:
        print(line)
    print(f"check_errors: {n} public functions, {len(incomplete)} with an incomplete contract")
    dangling = citations()
    for line in dangling:
        print(line)
    print(f"check_errors: {len(dangling)} citations of docs/ that lead nowhere")
    return 1 if bad or incomplete or dangling else 0


if __name__ == "__main__":
    sys.exit(main())
