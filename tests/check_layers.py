#!/usr/bin/env python3
"""No import circles between libwm's .c files.

A file depends on another when it uses a symbol (function or data) the
other defines: `nm` on the objects of the internal static library
(libwm_internal.a, every libwm .c file compiled once) gives each object's
defined and undefined symbols, and an undefined symbol is resolved to the
object that defines it.  Any cycle in that graph (two files that use each
other, or a longer ring) fails the check, with the symbols along it, so a
layer can be read, tested and replaced from the bottom up.

Limits: static inline functions in headers are not symbols and are not
seen (they belong to the header, not to a .c file); calls through function
pointers (scheme and kernel tables) are not dependencies, which is the
point of a table: the core reaches a scheme only through its methods.

usage: check_layers.py LIBWM_INTERNAL_A [NM]"""
import os
import re
import subprocess
import sys

LINE = re.compile(r"^.*?:([^:]+\.o):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z?])\s+(\S+)$")


def symbols(archive, nm):
    """{object: (defined, undefined)} from `nm -A` on the archive."""
    out = subprocess.run([nm, "-A", "--no-sort", archive], check=True, capture_output=True, text=True).stdout
    objs = {}
    for line in out.splitlines():
        # archive:member.o:[value] TYPE name (a thin archive names members by path)
        m = LINE.match(line)
        if not m:
            continue
        obj, kind, name = os.path.basename(m.group(1)), m.group(2), m.group(3)
        d, u = objs.setdefault(obj, (set(), set()))
        if kind == "U":
            u.add(name)
        elif kind.isupper() and kind not in "NW":  # global definitions only
            d.add(name)
    return objs


def graph(objs):
    owner = {s: o for o, (d, _) in objs.items() for s in d}
    edges = {o: {} for o in objs}
    for o, (_, u) in objs.items():
        for s in sorted(u):
            t = owner.get(s)
            if t and t != o:
                edges[o].setdefault(t, []).append(s)
    return edges


def cycles(edges):
    """Strongly connected components of more than one object (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(obj):
    # meson names libwm/detect/scan.c's object detect_scan.c.o
    return obj[:-2].replace("_", "/", 1) if obj.endswith(".c.o") else obj


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    objs = symbols(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "nm")
    if len(objs) < 10:
        sys.exit(f"check_layers: only {len(objs)} objects in {sys.argv[1]}: not the library?")
    edges = graph(objs)
    bad = cycles(edges)
    for comp in bad:
        print("import circle: " + " <-> ".join(name(o) for o in comp))
        for a in comp:
            for b in comp:
                if b in edges[a]:
                    print(f"  {name(a)} uses {name(b)}: {', '.join(edges[a][b][:6])}"
                          + (" ..." if len(edges[a][b]) > 6 else ""))
    if bad:
        sys.exit(1)
    print(f"check_layers: {len(objs)} objects, {sum(len(e) for e in edges.values())} dependencies, no circle")


if __name__ == "__main__":
    main()
