#!/usr/bin/env python3
"""Fails if the top-level modules of any crate import each other in a circle.

A module's imports are the `crate::<module>` paths in its files (a directory module
includes its submodules), outside `#[cfg(test)]` sections. DESIGN.md: "Within a
crate, modules do not import each other in circles."
"""
import pathlib, re, sys

def module_of(src: pathlib.Path, f: pathlib.Path) -> str:
    rel = f.relative_to(src).parts
    return rel[0].removesuffix(".rs")

def edges(src: pathlib.Path):
    graph = {}
    for f in src.rglob("*.rs"):
        m = module_of(src, f)
        if m in ("lib", "main"):
            continue
        text = f.read_text()
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        if f.name.endswith("_tests.rs") or f.name == "tests.rs":
            continue
        deps = set(re.findall(r"crate::([a-z_0-9]+)", text))
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            deps |= {p.strip().split("::")[0] for p in group.split(",") if p.strip()}
        graph.setdefault(m, set()).update(d for d in deps if d != m)
    return graph

def cycles(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop(); on.discard(w); scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))
    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out

failed = False
for src in sorted(pathlib.Path(__file__).resolve().parent.parent.glob("crates/*/src")):
    for scc in cycles(edges(src)):
        failed = True
        print(f"{src.parent.name}: modules import each other in a circle: {' <-> '.join(scc)}")
        g = edges(src)
        for m in scc:
            print(f"    {m} -> {', '.join(sorted(d for d in g[m] if d in scc))}")
sys.exit(1 if failed else 0)
