#!/usr/bin/env python3
"""The documentation test (meson test `docs`): README.md, docs/**/*.md and the
man page must stay true to the repository and to the build.

  check_docs.py --root SRC --build BUILD --cc CC --lib LIBWM.so
                --tokenizer-lib LIBWM-TOKENIZER.so --wm WM [--cflags FLAGS] [--llama-dir DIR --llama-lib LIBWM-LLAMA.so]
                [--python PY]

Checks, and prints one line per failure (file:line: what), exit status 1 if any:

1. Links.  Every [text](target) and ![alt](target) outside code resolves to
   a file or folder inside the repository (relative to the page; nothing
   that leaves the repository, such as ../shared, not even through a
   symlink), and every #anchor to a heading of the target page
   (GitHub's slugs).  The text "../shared" may not appear at all.  File
   paths the man page names (README.md, docs/...) must exist.
2. C blocks (```c).  A block right after <!-- from FILE:A-B --> (lines A to B)
   or <!-- from FILE#NAME --> (the lines between a comment line
   "/* [NAME] */" and one "/* [/NAME] */"; // and # comments also do) must equal that part of FILE exactly: the file is
   built and run by the suite, the quote only has to match it.  Any other
   block is compiled and linked against the build's headers and library: a
   block with main() as it is, anything else as the body of main() after
   the declarations of an optional <!-- c-prelude: ... --> comment right
   before it (#include lines are moved to the top).  A block is linked with
   libwm-tokenizer only when it calls the tokenizer (wm_tokenizer_*,
   wm_encode*, wm_decode): libwm alone must do the rest.  Blocks that include
   <wm/llama.h> need --llama-dir, or are reported as skipped.
3. Shell blocks (```sh, ```bash, ```console).  Each `wm` command line must
   use a subcommand that `wm --help` lists and only options that
   `wm SUBCOMMAND --help` lists; scripts/, examples/, docs/, tests/,
   integrations/ and bench/ paths named in them must exist.
4. Python blocks (```python).  Each must parse; a block right after
   <!-- python: run --> is run with --python, the built library
   (LIBWM_LIBRARY) and the source tree's python/ package, and must exit 0.
"""
import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
COMMENT = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$")
PATHISH = re.compile(r"(?<![\w./-])((?:scripts|examples|docs|tests|integrations|bench)/[\w./-]*[\w/])")

failures = []
notes = []


def fail(where, what):
    failures.append(f"{where}: {what}")


def slug(text, seen):
    """GitHub's anchor for a heading text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    s = text.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    s = s.replace(" ", "-")
    n = seen.get(s, 0)
    seen[s] = n + 1
    return s if n == 0 else f"{s}-{n}"


def parse(path):
    """(lines, blocks, prose): blocks are (lang, first line no, body lines,
    directive comment or None); prose is [(line no, text)] outside code."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, prose = [], []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            fence, lang = m.group(2), m.group(3).lower()
            directive = None
            j = i - 1
            if j >= 0:
                c = COMMENT.match(lines[j])
                if c:
                    directive = c.group(1)
            body, k = [], i + 1
            while k < len(lines) and not lines[k].strip().startswith(fence):
                body.append(lines[k])
                k += 1
            blocks.append((lang, i + 2, body, directive))
            i = k + 1
            continue
        prose.append((i + 1, lines[i]))
        i += 1
    return lines, blocks, prose


def anchors_of(path, cache={}):
    if path not in cache:
        _, _, prose = parse(path)
        seen, out = {}, set()
        for _, text in prose:
            m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", text)
            if m:
                out.add(slug(m.group(2), seen))
        for _, text in prose:  # explicit HTML anchors
            for a in re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", text):
                out.add(a)
        cache[path] = out
    return cache[path]


def inside(root, path):
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def check_links(root, page, prose):
    rel = os.path.relpath(page, root)
    for no, text in prose:
        where = f"{rel}:{no}"
        if "../shared" in text:
            fail(where, "mentions ../shared, which is outside the repository")
        stripped = re.sub(r"`[^`]*`", "", text)  # code spans are not links
        for m in LINK.finditer(stripped):
            target = m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto: ...
                continue
            path_part, _, anchor = target.partition("#")
            dest = page if path_part == "" else os.path.normpath(os.path.join(os.path.dirname(page), path_part))
            if not inside(root, dest):
                fail(where, f"link {target} leaves the repository")
                continue
            if not os.path.exists(dest):
                fail(where, f"link {target}: no such file {os.path.relpath(dest, root)}")
                continue
            if anchor:
                if not dest.endswith(".md") or os.path.isdir(dest):
                    fail(where, f"link {target}: an anchor into a file that is not Markdown")
                elif anchor not in anchors_of(dest):
                    fail(where, f"link {target}: no heading with anchor #{anchor} in {os.path.relpath(dest, root)}")


def quoted_lines(root, spec, where):
    """The lines a <!-- from ... --> directive names, or None after a failure."""
    m = re.match(r"^from\s+(\S+?)(?::(\d+)-(\d+)|#([\w-]+))$", spec)
    if not m:
        fail(where, f"cannot read the directive <!-- {spec} -->")
        return None
    path = os.path.join(root, m.group(1))
    if not inside(root, path) or not os.path.isfile(path):
        fail(where, f"quoted file {m.group(1)} does not exist in the repository")
        return None
    lines = open(path, encoding="utf-8").read().split("\n")
    if m.group(4):
        name = m.group(4)
        def mark(n):
            return re.compile(r"^\s*(?:/\*|//|#)\s*\[" + re.escape(n) + r"\]\s*(?:\*/)?\s*$")
        starts = [i for i, l in enumerate(lines) if mark(name).match(l)]
        ends = [i for i, l in enumerate(lines) if mark("/" + name).match(l)]
        if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0]:
            fail(where, f"{m.group(1)} needs exactly one [{name}] line and one [/{name}] line after it")
            return None
        return lines[starts[0] + 1:ends[0]]
    a, b = int(m.group(2)), int(m.group(3))
    if not 1 <= a <= b <= len(lines):
        fail(where, f"{m.group(1)} has no lines {a}-{b} ({len(lines)} lines)")
        return None
    return lines[a - 1:b]


def check_c(args, root, rel, no, body, directive, tmp, counter):
    where = f"{rel}:{no}"
    if directive and directive.startswith("from "):
        want = quoted_lines(root, directive, where)
        if want is not None and want != body:
            for i, (x, y) in enumerate(zip(body + [None] * len(want), want + [None] * len(body))):
                if x != y:
                    fail(f"{rel}:{no + i}", f"quote differs from {directive[5:]}: {x!r} in the page, {y!r} in the file")
                    break
        return "quoted"
    text = "\n".join(body)
    llama = "wm/llama.h" in text
    if llama and not args.llama_dir:
        notes.append(f"{where}: skipped (needs llama.cpp: this build has no --llama-dir)")
        return "skipped"
    prelude = ""
    if directive and directive.startswith("c-prelude:"):
        prelude = directive[len("c-prelude:"):].strip()
    includes = [l for l in body if l.lstrip().startswith("#include")]
    rest = ["" if l.lstrip().startswith("#include") else l for l in body]  # keeps the page's line numbers
    head = "#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <wm.h>\n"
    if re.search(r"\bmain\s*\(", text):
        src = head + f"#line {no} \"{rel}\"\n" + text + "\n"
    else:
        src = head + "\n".join(includes) + "\nint main(void)\n{\n" + prelude + f"\n#line {no} \"{rel}\"\n" + \
            "\n".join(rest) + "\nreturn 0;\n}\n"
    c = os.path.join(tmp, f"snippet{counter}.c")
    open(c, "w").write(src)
    cmd = [args.cc, "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE",
           "-I", os.path.join(root, "include"), "-I", os.path.join(args.build, "include"),
           "-Werror=implicit-function-declaration", "-Werror=incompatible-pointer-types",
           "-Werror=int-conversion", "-Werror=return-type", "-Wno-unused-result",
           "-Wno-unused-variable", "-Wno-uninitialized", "-Wno-maybe-uninitialized"] + args.cflags.split()
    libs = [args.lib]
    if re.search(r"\bwm_(tokenizer_|encode|decode)", text):
        libs = [args.tokenizer_lib, args.lib]
    if llama:
        cmd += ["-isystem", os.path.join(args.llama_dir, "include")]
        libs = [args.llama_lib] + libs + [os.path.join(args.llama_dir, "lib", "libllama.so")]
    cmd += [c, "-o", os.path.join(tmp, f"snippet{counter}")] + libs + ["-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = "\n    ".join(l for l in r.stderr.splitlines() if "error" in l or "undefined" in l)[:2000]
        fail(where, f"C block does not compile or link:\n    {msg or r.stderr[:2000]}")
    return "compiled"


def wm_help(wm, cache={}):
    if not cache:
        top = subprocess.run([wm, "--help"], capture_output=True, text=True)
        subs = re.findall(r"^  (\w+)\s{2,}", top.stdout + top.stderr, re.M)
        cache["subs"] = {}
        for s in subs:
            h = subprocess.run([wm, s, "--help"], capture_output=True, text=True)
            cache["subs"][s] = set(re.findall(r"--[a-z][a-z0-9-]*", h.stdout + h.stderr))
    return cache["subs"]


def shell_lines(body):
    out, cur, start = [], "", None
    for i, l in enumerate(body):
        if start is None:
            start = i
        if l.rstrip().endswith("\\"):
            cur += l.rstrip()[:-1] + " "
            continue
        out.append((start, cur + l))
        cur, start = "", None
    if cur:
        out.append((start, cur))
    return out


def check_shell(args, root, rel, no, body):
    subs = wm_help(args.wm)
    for off, line in shell_lines(body):
        where = f"{rel}:{no + off}"
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        s = re.sub(r"(^|\s)#.*$", "", s)  # a trailing comment
        for p in PATHISH.findall(s):
            if not os.path.exists(os.path.join(root, p)) and "DATE" not in p:
                fail(where, f"names {p}, which does not exist")
        for seg in re.split(r"&&|\|\||[|;]", s):
            words = seg.split()
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value before a command
                words = words[1:]
            if words and words[0] == "sudo":
                words = words[1:]
            if not words or not (words[0] == "wm" or words[0].endswith("/wm")):
                continue
            if len(words) < 2 or words[1].startswith("-"):
                continue
            sub = words[1]
            if sub not in subs:
                fail(where, f"`wm {sub}`: no such subcommand (wm --help lists {', '.join(sorted(subs))})")
                continue
            for w in words[2:]:
                opt = w.split("=", 1)[0]
                if opt.startswith("--") and opt not in subs[sub]:
                    fail(where, f"`wm {sub} {opt}`: not an option of wm {sub} (wm {sub} --help)")


def check_python(args, root, rel, no, body, directive, tmp, counter):
    where = f"{rel}:{no}"
    src = "\n".join(body) + "\n"
    try:
        ast.parse(src)
    except SyntaxError as e:
        fail(f"{rel}:{no + (e.lineno or 1) - 1}", f"Python block does not parse: {e.msg}")
        return "failed"
    if directive != "python: run":
        return "parsed"
    if not args.python:
        notes.append(f"{where}: parsed, not run (no --python with numpy in this build)")
        return "parsed"
    f = os.path.join(tmp, f"snippet{counter}.py")
    open(f, "w").write(src)
    env = dict(os.environ, LIBWM_LIBRARY=args.lib,
               PYTHONPATH=os.path.join(root, "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([args.python, f], capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        fail(where, f"Python block exits {r.returncode}:\n    " + "\n    ".join(r.stderr.strip().splitlines()[-6:]))
    return "run"


def check_man(root, path):
    rel = os.path.relpath(path, root)
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        text = line.replace("\\-", "-")
        for p in re.findall(r"(?<![\w/.-])((?:docs/[\w./-]+\.md)|README\.md)", text):
            if not os.path.exists(os.path.join(root, p)):
                fail(f"{rel}:{no}", f"names {p}, which does not exist")
        if "../shared" in text:
            fail(f"{rel}:{no}", "mentions ../shared, which is outside the repository")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--cflags", default="")
    ap.add_argument("--lib", required=True)
    ap.add_argument("--tokenizer-lib", required=True)
    ap.add_argument("--wm", required=True)
    ap.add_argument("--llama-dir")
    ap.add_argument("--llama-lib")
    ap.add_argument("--python")
    args = ap.parse_args()
    root = os.path.realpath(args.root)
    args.lib = os.path.realpath(args.lib)
    pages = [os.path.join(root, "README.md")]
    for d, _, files in os.walk(os.path.join(root, "docs")):
        pages += [os.path.join(d, f) for f in sorted(files) if f.endswith(".md")]
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for page in sorted(pages):
            rel = os.path.relpath(page, root)
            _, blocks, prose = parse(page)
            check_links(root, page, prose)
            for lang, no, body, directive in blocks:
                n += 1
                if directive and "../shared" in directive:
                    fail(f"{rel}:{no - 1}", "mentions ../shared, which is outside the repository")
                if lang == "c":
                    kind = check_c(args, root, rel, no, body, directive, tmp, n)
                elif lang in ("sh", "bash", "console", "shell"):
                    check_shell(args, root, rel, no, body)
                    kind = "shell checked"
                elif lang in ("python", "py"):
                    kind = "python " + check_python(args, root, rel, no, body, directive, tmp, n)
                else:
                    for no2, text in enumerate(body, no):
                        if "../shared" in text:
                            fail(f"{rel}:{no2}", "mentions ../shared, which is outside the repository")
                    kind = "not code"
                counts[f"{lang or 'plain'} {kind}"] = counts.get(f"{lang or 'plain'} {kind}", 0) + 1
        for man in (os.path.join(root, "libwm", "cli", "wm.1"),):
            check_man(root, man)
    for line in notes:
        print("note:", line)
    print(f"docs: {len(pages)} pages; blocks: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    for line in failures:
        print("FAIL", line)
    print(f"docs: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
