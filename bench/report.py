#!/usr/bin/env python3
"""Summarizes warden's benchmark results (Google Benchmark JSON) and draws the plots.

Usage: report.py RESULTS_DIR [--markdown FILE] [--plots]
       report.py RESULTS_DIR --headline [--markdown FILE]

Reads RESULTS_DIR/{reads,mix,ops,latency,memory}.json (whichever exist) and machine.json,
prints the summary tables and the design targets (PASS/MISS) to stdout, optionally writes the
same tables as Markdown, and with --plots writes PNGs into RESULTS_DIR with gnuplot (skipped,
with a message, when gnuplot is missing). Standard library only.

With --headline it reads instead what `scripts/bench` (default mode) leaves there:
RESULTS_DIR/{get,latency,puts,calls,mix,memory}.json from bench_headline, and prints one
Markdown table: a row per workload; table, actor, the best thread-safe peer (named), the
unsynchronized reference, and table against the best peer.

Every figure is the median over the repetitions Google Benchmark ran. Throughput is the
`ops_per_s` counter: operations of all threads divided by the run's wall time (see
bench/common.hpp for why Google Benchmark's own items_per_second is not used).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

# Columns, in order: (subject name in the benchmark names, column header).
SUBJECTS = [
    ("table", "table"),
    ("table_pinned", "pinned"),
    ("table_sym", "sym"),
    ("any_table", "any"),
    ("actor", "actor"),
    ("unsync", "unsync"),
    ("shared_mutex", "shmtx"),
    ("mutex", "mutex"),
    ("tbb", "tbb"),
    ("cuckoo", "cuckoo"),
    ("boost_cfm", "boost"),
    ("caf", "caf"),
]
# Peers for "table / best peer": the thread-safe ones. `unsync` is the reference, not a peer.
PEERS = ["shared_mutex", "mutex", "tbb", "cuckoo", "boost_cfm", "caf"]


SUITES = ("reads", "mix", "ops", "latency", "memory")
# The steps of the default run (bench_headline, one workload per step), in report order.
HEADLINE_STEPS = ("get", "latency", "puts", "calls", "mix", "memory")


def load(results_dir, names=SUITES):
    """Returns a list of records: {family, params, threads, m (metrics)} from the medians."""
    records = []
    for name in names:
        path = os.path.join(results_dir, name + ".json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            parts = b["run_name"].split("/")
            params = {}
            for p in parts[1:]:
                if ":" in p:
                    k, v = p.split(":", 1)
                    params[k] = v
            m = {k: v for k, v in b.items() if isinstance(v, (int, float))}
            records.append(
                {"family": parts[0], "params": params, "threads": int(b.get("threads", 1)), "m": m})
    return records


def find(records, family, threads=None, **params):
    """All records of `family` whose params include `params` (values compared as strings)."""
    out = []
    for r in records:
        if r["family"] != family:
            continue
        if threads is not None and r["threads"] != threads:
            continue
        if all(r["params"].get(k) == str(v) for k, v in params.items()):
            out.append(r)
    return out


def metric(records, family, key, threads=None, **params):
    rs = find(records, family, threads, **params)
    vals = [r["m"][key] for r in rs if key in r["m"]]
    return statistics.median(vals) if vals else None


def fmt(v, unit=""):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        s = "%.0f" % v
    elif a >= 10:
        s = "%.1f" % v
    elif a >= 1:
        s = "%.2f" % v
    elif a >= 0.01:
        s = "%.3f" % v
    elif a == 0:
        s = "0"
    else:
        s = "%.1e" % v
    return s + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Table:
    """A titled table printed as aligned text and as Markdown."""

    def __init__(self, title, note, header):
        self.title, self.note, self.header, self.rows = title, note, header, []

    def add(self, row):
        self.rows.append(row)

    def text(self):
        widths = [max(len(str(x)) for x in col) for col in zip(self.header, *self.rows)]
        lines = ["== %s ==" % self.title]
        if self.note:
            lines.append("   " + self.note)
        for i, row in enumerate([self.header] + self.rows):
            cells = [str(c).ljust(w) if j == 0 else str(c).rjust(w)
                     for j, (c, w) in enumerate(zip(row, widths))]
            lines.append("  " + "  ".join(cells).rstrip())
            if i == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self):
        lines = ["#### " + self.title, ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(self.header) - 1)) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
        return "\n".join(lines)


def subjects_present(records, families):
    present = {r["params"].get("subject") for r in records if r["family"] in families}
    return [(s, h) for s, h in SUBJECTS if s in present]


def workload_table(records, title, note, family, rows, value, higher_is_better=True,
                   show=lambda v: v * 1e-6):
    """One row per workload variant, one column per subject, plus two ratios.

    rows: (label, threads, params) or (label, threads, params, metric key overriding `value`).
    Cells show show(metric). The ratios table/actor and table/best peer are oriented so that
    > 1 means the table is better (for latencies, CPU times and bytes: theirs / the table's)."""
    subjects = subjects_present(records, [family])
    header = ["workload"] + [h for _, h in subjects] + ["table/actor", "table/best peer"]
    t = Table(title, note, header)
    for row in rows:
        label, threads, params = row[:3]
        key = row[3] if len(row) > 3 else value
        vals = {s: metric(records, family, key, threads, subject=s, **params)
                for s, _ in subjects}
        if all(v is None for v in vals.values()):
            continue
        cells = [label] + [fmt(None if vals[s] is None else show(vals[s])) for s, _ in subjects]
        peers = [vals[p] for p in PEERS if vals.get(p)]
        best = (max(peers) if higher_is_better else min(peers)) if peers else None
        if higher_is_better:
            r_actor, r_peer = ratio(vals.get("table"), vals.get("actor")), ratio(vals.get("table"), best)
        else:
            r_actor, r_peer = ratio(vals.get("actor"), vals.get("table")), ratio(best, vals.get("table"))
        cells += [fmt(r_actor, "x"), fmt(r_peer, "x")]
        t.add(cells)
    return t


def build_tables(records):
    tables = []
    T = [1, 2, 4, 64]
    n_big, n_small = "1000000", "100000"
    short = {n_big: "1e6", n_small: "1e5"}

    rows = [("%s n=%s T=%d" % (op, short[n], th), th, {"mode": "tput", "op": op, "n": n})
            for op in ("hit", "miss") for n in (n_big, n_small) for th in T]
    tables.append(workload_table(
        records, "reads: get throughput (M ops/s)",
        "independent lookups, uniform keys; T = threads (64 = oversubscribed: 2 cores)",
        "reads", rows, "ops_per_s"))

    rows = [("chain n=%s" % short[n], 1, {"mode": "chain", "n": n}) for n in (n_big, n_small)]
    tables.append(workload_table(
        records, "reads: get latency (ns per get, dependent chain, 1 thread)",
        "each value is the next key, so gets cannot overlap", "reads", rows, "ops_per_s",
        show=lambda v: 1e9 / v))

    rows = [("cpu ns/get, read-only", 1, {"writer": 0}),
            ("cpu ns/get, writer flat out", 1, {"writer": 1}),
            ("writer's M puts/s meanwhile", 1, {"writer": 1}, "writer_puts_per_s")]
    t = workload_table(
        records, "reads with a writer: the reader's CPU time per get (ns)",
        "1 reader (1e6 keys, hits); a background thread puts flat out, flushing every 256; "
        "ratios of the first two rows: theirs / the table's", "reader_cpu", rows[:2],
        "cpu_ns_per_get", higher_is_better=False, show=lambda v: v)
    t.rows += workload_table(records, "", "", "reader_cpu", rows[2:], "writer_puts_per_s").rows
    tables.append(t)

    rows = [("%s %s/%d T=%d" % (dist, reads, 100 - int(reads), th), th,
             {"dist": dist, "reads": reads})
            for dist in ("uniform", "zipf") for reads in ("100", "99", "90", "50", "0")
            for th in T]
    tables.append(workload_table(
        records, "mixes: reads/writes (M ops/s)",
        "1e5 keys; writes are puts, each thread flushes every 256 of its writes",
        "mix", rows, "ops_per_s"))
    tables.append(workload_table(
        records, "mixes: p99 latency of one operation (us)",
        "one operation in 127 timed on its own (clock reads included; a sampled 256th write "
        "includes its flush)", "mix", rows, "p99_ns", higher_is_better=False,
        show=lambda v: v * 1e-3))

    rows = [("%s T=%d" % (k, th), th, {"keys": k}) for k in ("hot", "spread") for th in (1, 2, 4)]
    tables.append(workload_table(records, "update_counter (M ops/s)",
                                 "hot: one key; spread: 1e5 keys, uniform", "counter", rows,
                                 "ops_per_s"))
    rows = [("transfer T=%d" % th, th, {}) for th in (1, 2, 4)]
    tables.append(workload_table(records, "transact: two-key transfer (M ops/s)",
                                 "1000 accounts; the peers have no transact", "transact", rows,
                                 "ops_per_s"))
    rows = [("64 keys T=%d" % th, th, {}) for th in (1, 2, 4)]
    tables.append(workload_table(records, "snapshot reading 64 keys (M snapshots/s)",
                                 "1e5 keys; the peers have no snapshot", "snapshot", rows,
                                 "ops_per_s"))
    rows = [("%d producer%s" % (th, "" if th == 1 else "s"), th, {}) for th in (1, 4)]
    tables.append(workload_table(records, "puts through the owner, flush included (M puts/s)",
                                 "1e6 keys; batches of 1024 puts, each ending with flush()",
                                 "puts", rows, "ops_per_s"))

    tables.append(workload_table(records, "many clients: feature-flag gets, 64 threads (M ops/s)",
                                 "8 flag keys, one toggled every ~100 us; 2 cores; the "
                                 "two clock reads per get are included", "clients",
                                 [("throughput", 64, {})], "ops_per_s"))
    rows = [(label, 64, {}, key) for label, key in
            (("p50", "p50_ns"), ("p99", "p99_ns"), ("p99.9", "p999_ns"), ("max", "max_ns"))]
    tables.append(workload_table(records, "many clients: latency of one get (us)",
                                 "steady_clock around each get, every thread's samples merged",
                                 "clients", rows, "p50_ns", higher_is_better=False,
                                 show=lambda v: v * 1e-3))

    rows = [("fill: %s" % f, 1, {"fill": f}) for f in ("burst", "batched")]
    tables.append(workload_table(
        records, "memory: bytes per entry, 1e6 uint64->uint64 entries",
        "burst: 1e6 puts then one flush; batched: flush every 1000 puts", "memory", rows,
        "bytes_per_entry", higher_is_better=False, show=lambda v: v))
    return tables


def headline(records):
    """The short table for the README: a few workloads, warden's backends, the reference and
    the best thread-safe peer (named)."""
    rows = [
        ("get, 1e6 keys, 1 thread (M/s)", "reads", 1, {"mode": "tput", "op": "hit", "n": "1000000"}, "ops_per_s", True, 1e-6),
        ("get, 1e6 keys, 2 threads (M/s)", "reads", 2, {"mode": "tput", "op": "hit", "n": "1000000"}, "ops_per_s", True, 1e-6),
        ("get, 1e6 keys, 64 threads (M/s)", "reads", 64, {"mode": "tput", "op": "hit", "n": "1000000"}, "ops_per_s", True, 1e-6),
        ("get latency, dependent chain (ns)", "reads", 1, {"mode": "chain", "n": "1000000"}, "ops_per_s", True, "ns"),
        ("90/10 mix, 2 threads (M ops/s)", "mix", 2, {"dist": "uniform", "reads": "90"}, "ops_per_s", True, 1e-6),
        ("puts + flush, 1 producer (M/s)", "puts", 1, {}, "ops_per_s", True, 1e-6),
        ("update_counter, 1 thread (M/s)", "counter", 1, {"keys": "spread"}, "ops_per_s", True, 1e-6),
        ("64 clients: get p99 (us)", "clients", 64, {}, "p99_ns", False, 1e-3),
        ("64 clients: throughput (M/s)", "clients", 64, {}, "ops_per_s", True, 1e-6),
        ("bytes per entry (1e6, batched)", "memory", 1, {"fill": "batched"}, "bytes_per_entry", False, 1),
    ]
    t = Table("headline (medians; details below)", "",
              ["workload", "table", "table pinned", "table sym. fence", "actor", "best peer",
               "unsync (ref.)"])
    for label, family, th, params, key, higher, scale in rows:
        def show(v):
            if v is None:
                return None
            return 1e9 / v if scale == "ns" else v * scale
        vals = {s: metric(records, family, key, th, subject=s, **params) for s, _ in SUBJECTS}
        if all(v is None for v in vals.values()):
            continue
        peers = [(vals[p], p) for p in PEERS if vals.get(p)]
        best = (max(peers) if higher else min(peers)) if peers else None
        t.add([label, fmt(show(vals["table"])), fmt(show(vals["table_pinned"])),
               fmt(show(vals["table_sym"])), fmt(show(vals["actor"])),
               "-" if best is None else "%s (%s)" % (fmt(show(best[0])), best[1]),
               fmt(show(vals["unsync"]))])
    return t


def round_ratios(records, family, num, den, key, **params):
    """Per-round ratio num/den of `key` (same round), then the median over rounds."""
    rounds = sorted({r["params"].get("round") for r in records if r["family"] == family})
    vals = []
    for rd in rounds:
        a = num(rd)
        b = den(rd)
        if a is not None and b is not None and b != 0:
            vals.append(a / b)
    return statistics.median(vals) if vals else None


def targets(records):
    """Returns rows (target, achieved, goal, result)."""
    rows = []

    def tp(subject, threads, rd):
        return metric(records, "target", "ops_per_s", threads, subject=subject, round=rd, op="hit")

    def verdict(ok):
        return "-" if ok is None else ("PASS" if ok else "MISS")

    # 1. get time vs the unsynchronized map, one thread: time ratio = reference ops / ours.
    for subject, goal, label in (("table", 1.3, "table get time / unsync, 1 thread (<= 1.3x)"),
                                 ("table_sym", 1.3,
                                  "table_sym get time / unsync, 1 thread (<= 1.3x)"),
                                 ("table_pinned", 1.1,
                                  "pinned get time / unsync, 1 thread (aim 1.1x)")):
        r = round_ratios(records, "target", lambda rd: tp("unsync", 1, rd),
                         lambda rd, s=subject: tp(s, 1, rd), "ops_per_s")
        rows.append((label, fmt(r, "x"), "<= %.1fx" % goal, verdict(None if r is None else r <= goal)))

    # Context for 1 (no target): what splitting the reference into 16 shards alone costs.
    r = round_ratios(records, "target", lambda rd: tp("unsync", 1, rd),
                     lambda rd: tp("sharded16", 1, rd), "ops_per_s")
    if r is not None:
        rows.append(("(context) 16 plain absl shards, no warden code / unsync", fmt(r, "x"),
                     "-", "info"))

    # 2. two readers: >= 1.9x one thread, or >= 0.85x the reference's own 2-thread throughput.
    for subject in ("table", "table_sym", "table_pinned"):
        scale = round_ratios(records, "target", lambda rd, s=subject: tp(s, 2, rd),
                             lambda rd, s=subject: tp(s, 1, rd), "ops_per_s")
        vs_ref = round_ratios(records, "target", lambda rd, s=subject: tp(s, 2, rd),
                              lambda rd: tp("unsync", 2, rd), "ops_per_s")
        ref_scale = round_ratios(records, "target", lambda rd: tp("unsync", 2, rd),
                                 lambda rd: tp("unsync", 1, rd), "ops_per_s")
        ok = None
        if scale is not None or vs_ref is not None:
            ok = (scale or 0) >= 1.9 or (vs_ref or 0) >= 0.85
        name = {"table": "table", "table_sym": "table_sym", "table_pinned": "pinned"}[subject]
        rows.append(("%s 2 threads / 1 thread (unsync: %s)" % (name, fmt(ref_scale, "x")),
                     fmt(scale, "x"), ">= 1.9x", ""))
        rows.append(("%s 2 threads / unsync 2 threads" % name, fmt(vs_ref, "x"),
                     ">= 0.85x (either)", verdict(ok)))

    # 3. reader CPU time per get with a writer flat out / read-only.
    for subject, name in (("table", "table"), ("table_sym", "table_sym"),
                          ("table_pinned", "pinned")):
        r = round_ratios(
            records, "target_cpu",
            lambda rd, s=subject: metric(records, "target_cpu", "cpu_ns_per_get", 1, subject=s,
                                         round=rd, writer=1),
            lambda rd, s=subject: metric(records, "target_cpu", "cpu_ns_per_get", 1, subject=s,
                                         round=rd, writer=0), "cpu_ns_per_get")
        w = metric(records, "target_cpu", "writer_puts_per_s", 1, subject=subject, writer=1)
        rows.append(("%s reader CPU/get, writer on / off (writer %s M puts/s)"
                     % (name, fmt(None if w is None else w * 1e-6)),
                     fmt(r, "x"), "<= 1.25x", verdict(None if r is None else r <= 1.25)))

    # 4. table get >= 2x tbb and shared_mutex with 2 threads.
    for peer in ("tbb", "shared_mutex"):
        r = round_ratios(records, "target", lambda rd: tp("table", 2, rd),
                         lambda rd, p=peer: tp(p, 2, rd), "ops_per_s")
        rows.append(("table get / %s get, 2 threads" % peer, fmt(r, "x"), ">= 2x",
                     verdict(None if r is None else r >= 2)))

    # 5. puts from one producer.
    for subject in ("table", "table_sym"):
        p = metric(records, "puts", "ops_per_s", 1, subject=subject)
        rows.append(("%s puts from 1 producer, flush included (M/s)" % subject,
                     fmt(None if p is None else p * 1e-6), ">= 10",
                     verdict(None if p is None else p >= 10e6)))

    # 6. many clients: table p99 orders of magnitude below the actor's.
    tp99 = metric(records, "clients", "p99_ns", 64, subject="table")
    ap99 = metric(records, "clients", "p99_ns", 64, subject="actor")
    r = ratio(ap99, tp99)
    rows.append(("actor p99 / table p99, 64 clients (table %s us, actor %s us)"
                 % (fmt(None if tp99 is None else tp99 * 1e-3),
                    fmt(None if ap99 is None else ap99 * 1e-3)),
                 fmt(r, "x"), ">= 100x", verdict(None if r is None else r >= 100)))

    # 7. memory.
    for fill in ("batched", "burst"):
        r = ratio(metric(records, "memory", "bytes_per_entry", subject="table", fill=fill),
                  metric(records, "memory", "bytes_per_entry", subject="unsync", fill=fill))
        rows.append(("table bytes/entry / absl map's (%s fill)" % fill, fmt(r, "x"), "<= 2.5x",
                     verdict(None if r is None else r <= 2.5)))
    return rows


def machine_lines(results_dir):
    path = os.path.join(results_dir, "machine.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        m = json.load(f)
    return ["machine: %s, %s cores; %s; flags %s" % (m.get("cpu"), m.get("cores"),
                                                      m.get("compiler"), m.get("flags")),
            "run: %s mode at %s, %s (commit %s); load average before %s, after %s"
            % (m.get("mode"), m.get("priority", "nice 0"), m.get("date"), m.get("commit"), m.get("load_before"),
               m.get("load_after")),
            "CPU taken by other processes during each step: %s%s"
            % (", ".join("%s %s%% (%s)" % (k, v.get("foreign_cpu"), v.get("date"))
                         for k, v in m.get("steps", {}).items()),
               "; during all steps: %s%%" % m["foreign_cpu_total"]
               if "foreign_cpu_total" in m else "")]


# ---- plots ----------------------------------------------------------------------------------

def gnuplot(script, cwd):
    exe = shutil.which("gnuplot")
    if not exe:
        print("plots: gnuplot not found; skipped (install gnuplot-nox)")
        return False
    terms = subprocess.run([exe, "-e", "set terminal"], capture_output=True, text=True)
    term = "pngcairo" if "pngcairo" in (terms.stdout + terms.stderr) else "png"
    script = script.replace("@TERM@", term)
    r = subprocess.run([exe], input=script, text=True, cwd=cwd, capture_output=True)
    if r.returncode != 0:
        print("plots: gnuplot failed: " + r.stderr.strip()[:500])
        return False
    return True


# One fixed colour per subject, so every plot reads the same; warden's own lines are thicker.
STYLE = {"table": ("#7b2cbf", 3), "table_pinned": ("#c77dff", 3), "table_sym": ("#5a189a", 2),
         "any_table": ("#4895ef", 2),
         "actor": ("#f77f00", 3), "unsync": ("#9e9e9e", 2), "shared_mutex": ("#2a9d8f", 1.5),
         "mutex": ("#e63946", 1.5), "tbb": ("#222222", 1.5), "cuckoo": ("#8d6e63", 1.5),
         "boost_cfm": ("#fb8500", 1.5), "caf": ("#06d6a0", 1.5)}


def plot_threads(records, results_dir, family, panels, out, title):
    """Throughput vs threads: one panel per (label, params), one line per subject."""
    T = [1, 2, 4, 64]
    subjects = [s for s, _ in subjects_present(records, [family])]
    blocks = []
    for label, params in panels:
        fname = "%s_%s.dat" % (out, "_".join("%s-%s" % kv for kv in sorted(params.items())))
        with open(os.path.join(results_dir, fname), "w") as f:
            f.write("# threads " + " ".join(subjects) + "\n")
            for i, th in enumerate(T):
                vals = []
                for s in subjects:
                    v = metric(records, family, "ops_per_s", th, subject=s, **params)
                    vals.append("NaN" if v is None else "%.6g" % (v * 1e-6))
                f.write("%d %s\n" % (i, " ".join(vals)))
        blocks.append((label, fname))
    cols = min(5, len(blocks))
    rows = (len(blocks) + cols - 1) // cols
    width, height = 330 * cols + 170, 300 * rows + 70
    g = ["set terminal @TERM@ size %d,%d font ',9' noenhanced" % (width, height),
         "set output '%s.png'" % out,
         # Panels leave the right edge free for the one legend, the top for the title.
         "set multiplot layout %d,%d title '%s' margins %.3f,%.3f,%.3f,%.3f spacing %.3f,%.3f"
         % (rows, cols, title, 55.0 / width, 1 - 170.0 / width, 45.0 / height,
            1 - 55.0 / height, 60.0 / width, 95.0 / height),
         "set logscale y", "set grid ytics", "set format y '%g'",
         "set xtics ('1' 0, '2' 1, '4' 2, '64' 3)", "set xrange [-0.2:3.2]",
         "set xlabel 'threads'", "set ylabel 'M ops/s' offset 1.5,0"]
    for k, (label, fname) in enumerate(blocks):
        if k == 0:
            g.append("set key at screen 0.995,0.85 right top vertical Left reverse samplen 2")
        else:
            g.append("set key off")
        g.append("set title '%s'" % label)
        plots = ["'%s' using 1:%d with linespoints lw %g pt 7 ps 0.7 lc rgb '%s' title '%s'"
                 % (fname, j + 2, STYLE.get(s, ("#000000", 1))[1], STYLE.get(s, ("#000000", 1))[0], s)
                 for j, s in enumerate(subjects)]
        g.append("plot " + ", \\\n     ".join(plots))
    g.append("unset multiplot")
    return gnuplot("\n".join(g) + "\n", results_dir) and out + ".png"


def plot_latency(records, results_dir):
    subjects = [s for s, _ in subjects_present(records, ["clients"])]
    fname = "latency_clients.dat"
    with open(os.path.join(results_dir, fname), "w") as f:
        f.write("# subject p50_us p99_us p999_us\n")
        for s in subjects:
            vals = [metric(records, "clients", k, 64, subject=s) for k in ("p50_ns", "p99_ns", "p999_ns")]
            f.write("%s %s\n" % (s, " ".join("NaN" if v is None else "%.6g" % max(v * 1e-3, 1e-3)
                                             for v in vals)))
    g = ["set terminal @TERM@ size 1000,520 font ',10' noenhanced",
         "set output 'latency_clients.png'",
         "set title 'Feature-flag get latency, 64 client threads on 2 cores (log scale)'",
         "set style data histograms", "set style histogram clustered gap 1",
         "set style fill solid 0.85 border -1", "set logscale y", "set grid ytics",
         "set ylabel 'microseconds per get'", "set yrange [0.01:*]", "set key top left",
         "set xtics rotate by -30",
         "plot '%s' using 2:xtic(1) title 'p50' lc rgb '#4c9be8', "
         "'' using 3 title 'p99' lc rgb '#f0a030', '' using 4 title 'p99.9' lc rgb '#d04040'" % fname]
    return gnuplot("\n".join(g) + "\n", results_dir) and "latency_clients.png"


def plots(records, results_dir):
    made = []
    if find(records, "mix"):
        panels = [("%s %s/%d" % (d, r, 100 - int(r)), {"dist": d, "reads": r})
                  for d in ("uniform", "zipf") for r in ("100", "99", "90", "50", "0")]
        made.append(plot_threads(records, results_dir, "mix", panels, "mix_threads",
                                 "Mixes: throughput vs threads (reads/writes, 1e5 keys)"))
    if find(records, "reads"):
        panels = [("%s, n=%s" % (op, "1e6" if n == "1000000" else "1e5"),
                   {"mode": "tput", "op": op, "n": n})
                  for op in ("hit", "miss") for n in ("1000000", "100000")]
        made.append(plot_threads(records, results_dir, "reads", panels, "reads_threads",
                                 "get throughput vs threads (uniform keys)"))
    if find(records, "clients"):
        made.append(plot_latency(records, results_dir))
    for m in made:
        if m:
            print("plot: " + os.path.join(results_dir, m))


# Peers' names as the headline prints them.
PEER_NAMES = {"shared_mutex": "shared_mutex", "mutex": "mutex", "tbb": "tbb",
              "cuckoo": "libcuckoo", "boost_cfm": "boost_cfm", "caf": "caf"}


def headline_report(results_dir, md_path):
    """The default run's table: a row per bench_headline workload, Markdown, to stdout."""
    families = {"get_throughput", "get_latency_with_64_clients", "puts_with_flush_throughput",
                "update_counter_throughput", "mix_throughput", "bytes_per_entry"}
    records = [r for r in load(results_dir, HEADLINE_STEPS) if r["family"] in families]
    if not records:
        print("report: no headline results (bench_headline) in " + results_dir)
        return 1
    machine = {}
    if os.path.exists(os.path.join(results_dir, "machine.json")):
        with open(os.path.join(results_dir, "machine.json")) as f:
            machine = json.load(f)
    cores = machine.get("cores", "?")
    # (label, family, threads, metric, higher is better, scale to the unit shown)
    rows = [
        ("get, 1e6 keys, 1 thread (M gets/s)", "get_throughput", 1, "ops_per_s", True, 1e-6),
        ("get, 1e6 keys, 2 threads (M gets/s)", "get_throughput", 2, "ops_per_s", True, 1e-6),
        ("get, 1e6 keys, 64 threads on %s cores (M gets/s)" % cores, "get_throughput", 64,
         "ops_per_s", True, 1e-6),
        ("get p99 latency, 64 clients on %s cores (us)" % cores, "get_latency_with_64_clients",
         64, "p99_ns", False, 1e-3),
        ("puts + flush, 1 producer (M puts/s)", "puts_with_flush_throughput", 1, "ops_per_s",
         True, 1e-6),
        ("update_counter calls back to back, 1 thread (M calls/s)", "update_counter_throughput",
         1, "ops_per_s", True, 1e-6),
        ("90% gets / 10% puts, 1 thread (M ops/s)", "mix_throughput", 1, "ops_per_s", True,
         1e-6),
        ("bytes per entry after 1e6 puts (a flush every 1000)", "bytes_per_entry", 1, "bytes_per_entry", False, 1),
    ]
    present = {r["params"].get("subject") for r in records}
    peers = [p for p in PEERS if p in present]
    header = ["workload", "table", "actor", "best peer", "unsync (ref.)", "table vs best peer"]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for label, family, th, key, higher, scale in rows:
        def val(subject):
            v = metric(records, family, key, th, subject=subject)
            return None if v is None else v * scale
        if not find(records, family, th):
            continue
        table, actor, unsync = val("table"), val("actor"), val("unsync")
        measured = [(val(p), p) for p in peers if val(p) is not None]
        best = None
        if measured:
            best = (max if higher else min)(measured, key=lambda x: x[0])
        best_cell = "-" if best is None else "%s (%s)" % (fmt(best[0]), PEER_NAMES[best[1]])
        # > 1: the table is better (throughput: table / peer; latency, bytes: peer / table).
        vs = None
        if best is not None:
            vs = ratio(table, best[0]) if higher else ratio(best[0], table)
        lines.append("| " + " | ".join([label, fmt(table), fmt(actor), best_cell, fmt(unsync),
                                         fmt(vs, "x")]) + " |")
    notes = [
        "Medians of the repetitions (bytes: one fill). table vs best peer > 1: the table is "
        "better (throughput: table / peer; latency and bytes: peer / table).",
        "Peers measured: %s (shared_mutex, mutex: absl::flat_hash_map behind that lock; tbb: "
        "tbb::concurrent_hash_map; libcuckoo: cuckoohash_map; boost_cfm: boost::concurrent_flat_map, "
        "when Boost >= 1.83 headers were found). unsync: absl::flat_hash_map with "
        "no synchronization, read-only when threads > 1, absent where another thread writes."
        % ", ".join(PEER_NAMES[p] for p in peers),
    ]
    about = machine_lines(results_dir)
    print("\n".join(about + [""] + lines + [""] + notes))
    if md_path:
        with open(md_path, "w") as f:
            # Two trailing spaces: a Markdown line break.
            f.write("\n".join([a + "  " for a in about] + [""] + lines + [""] + notes) + "\n")
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    results_dir = argv[1]
    md_path = argv[argv.index("--markdown") + 1] if "--markdown" in argv else None
    if "--headline" in argv:
        return headline_report(results_dir, md_path)
    records = load(results_dir)
    if not records:
        print("report: no results in " + results_dir)
        return 1
    out, md = [], []
    for line in machine_lines(results_dir):
        out.append(line)
        md.append(line + "  ")
    out.append("Figures: medians over repetitions. Ratios > 1 mean the table is better; "
               "'best peer' = the best of the thread-safe peers (not unsync).")
    md += ["", out[-1], ""]

    t_rows = targets(records)
    tt = Table("design targets (ratios within one run)", "2-thread and ratio targets from "
               "interleaved rounds: per-round ratio, median over rounds",
               ["target", "achieved", "goal", "result"])
    for r in t_rows:
        tt.add(list(r))
    for t in [tt, headline(records)] + build_tables(records):
        if not t.rows:
            continue
        out += ["", t.text()]
        md += ["", t.markdown()]
    print("\n".join(out))
    if md_path:
        with open(md_path, "w") as f:
            f.write("\n".join(md) + "\n")
    if "--plots" in argv:
        plots(records, results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
