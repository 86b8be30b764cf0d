#!/usr/bin/env python3
"""Bench helper for bench/instructions: callgate's instructions per request
by layer, from two callgrind profiles of one process (runs of N1 and N2
requests): each function's self cost in the second minus the first, over
N2 - N1, grouped by the crate that defines it. Shared helpers (memcpy, the
allocator, core's iterators and strings) count for the layer that called
them, in proportion to its calls' cost.
    layers.py FIRST.cg SECOND.cg N1 N2"""
import collections, re, sys

# crate -> layer; anything unlisted is "other".
LAYERS = [
    ("HTTP both ways (hyper, h2, http, httparse)", {"hyper", "h2", "http", "httparse", "hyper_util", "want", "http_body", "http_body_util"}),
    ("async runtime (tokio)", {"tokio", "mio"}),
    ("TLS (rustls, tokio-rustls, ring's AES-GCM)", {"rustls", "tokio_rustls", "ring"}),
    ("HMAC-SHA1 of the body (sha1, hmac)", {"sha1", "hmac"}),
    ("callgate's own code (checks, headers, phases)", {"callgate", "form_urlencoded", "percent_encoding", "ipnet", "subtle", "arc_swap", "hex", "sha2", "digest"}),
]
# Crates whose cost belongs to whoever called them.
SHARED = {"jemalloc", "libc-mem", "core", "alloc", "std", "bytes"}


def profile(path):
    """Each function's own cost, and each call edge's (caller, callee) cost."""
    names, cost, edges = {}, collections.Counter(), collections.Counter()
    fn, callee, after_call = None, None, False

    def name(text):
        m = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not m:
            return text
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    for line in open(path, errors="replace"):
        if line.startswith("fn="):
            fn = name(line[3:].rstrip("\n"))
        elif line.startswith("cfn="):
            callee = name(line[4:].rstrip("\n"))
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            if len(fields) >= 2:
                if after_call:  # a call's inclusive cost: not this function's own
                    after_call = False
                    edges[(fn, callee)] += int(fields[1])
                else:
                    cost[fn] += int(fields[1])
    return cost, edges


def crate(fn):
    if fn.startswith(("_rjem", "je_", "do_rallocx", "extent_", "arena_")):
        return "jemalloc"
    if fn.startswith(("__mem", "memcpy", "memmove", "memset")):
        return "libc-mem"
    if fn.startswith(("ring_core", "_aesni", "aes_", "gcm_")):
        return "ring"
    text = re.sub(r"^(core::ptr::drop_in_place<)+", "", fn.lstrip("<&")).lstrip("[&")
    # <T as tokio::io::AsyncRead>::poll_read: a generic's impl belongs to the trait's crate.
    impl = re.match(r"<?([A-Za-z_][A-Za-z_0-9]*)(?:<[^>]*>)? as ([a-z_0-9]+)::", fn.lstrip("<"))
    if impl and len(impl.group(1)) <= 2:
        return impl.group(2)
    m = re.match(r"([a-z_][a-z_0-9]*)::", text.lstrip("<&"))
    return m.group(1) if m else "other"


def main():
    first, second, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    (a, a_edges), (b, b_edges) = profile(first), profile(second)
    per_fn = {f: (b[f] - a.get(f, 0)) / (n2 - n1) for f in b}
    callers = collections.defaultdict(collections.Counter)
    for (caller, callee), c in b_edges.items():
        callers[callee][caller] += c - a_edges.get((caller, callee), 0)
    layer_of = {c: label for label, crates in LAYERS for c in crates}

    def layer(f):
        return layer_of.get(crate(f), "other")

    memo = {}

    def shares(f, seen=frozenset()):
        """The layers a shared helper's cost goes to: its callers' layers,
        through callers that are shared helpers themselves."""
        if f in memo:
            return memo[f]
        by = {g: w for g, w in callers[f].items() if w > 0 and g not in seen}
        weight = sum(by.values())
        out = collections.Counter()
        for g, w in by.items():
            if crate(g) in SHARED:
                for label, part in shares(g, seen | {f}).items():
                    out[label] += part * w / weight
            else:
                out[layer(g)] += w / weight
        if not out:
            out["other"] = 1.0
        memo[f] = out
        return out

    layers, tops = collections.Counter(), collections.defaultdict(collections.Counter)
    for f, c in per_fn.items():
        for label, part in (shares(f) if crate(f) in SHARED else {layer(f): 1.0}).items():
            layers[label] += c * part
            tops[label][f] += c * part
    total = sum(layers.values())
    print("| layer | instructions per request | share | heaviest function in it |")
    print("|---|---|---|---|")
    for label, c in layers.most_common():
        top, _ = tops[label].most_common(1)[0]
        top = re.sub(r"::\{\{closure\}\}", "", top)[:70].replace("|", "/")
        print(f"| {label} | {c:,.0f} | {100 * c / total:.0f} % | `{top}` |")
    print(f"| total | {total:,.0f} | | |")
    frameworks = sum(c for label, c in layers.items() if label.startswith(("HTTP", "TLS", "async")))
    print()
    print(f"The libraries callgate serves with (HTTP, TLS, runtime) alone: {frameworks:,.0f} instructions per request.")


if __name__ == "__main__":
    main()
