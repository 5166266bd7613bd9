#!/usr/bin/env python3
"""The statistics and the report of scripts/bench-proxy, scripts/bench-dns and scripts/bench-storage.

The bench scripts start the servers and measure; each measurement goes as one JSON object per
line (JSON Lines) into a file, and this program turns the file into the report: per-run figures,
medians, ratios against the anchors measured in the same run, and pass/fail per target.

    bench_report.py proxy FILE [PART...]   parts: header a c d b-lo b-wan e summary
    bench_report.py dns FILE [PART...]     parts: header intercepted forwarded
    bench_report.py storage FILE [PART...] parts: header table summary

Without a PART it prints the whole report, so a kept file (BENCH_RAW) can be reported again.
The scripts print one part at a time as they go.

Statistics (as the shell scripts computed them, but for the median of an even count):
  - A run the script marked invalid ("valid": false) is listed with its reason and left out of
    every median; the number left out is printed under the table.
  - A median is the middle value of the valid runs; for an even count (an even RUNS, or an odd
    one less an invalid run) the mean of the two middle values, where the shell scripts took the
    lower one. No valid run gives "-".
  - Per-run figures are computed from the raw counts (clock ticks, bytes, seconds); each figure
    is printed with a fixed number of decimals; a ratio is computed from the medians as printed
    (what a reader can check from the table), with two decimals: in bench-proxy "-" when either
    side is "-" or the divisor is 0, in bench-dns "0.00" when the divisor is not positive.
  - A target is met when the printed ratio (or value) satisfies it; "-" is "n/a", not met.

Standard library only (Debian's python3).
"""

import json
import statistics
import sys

GIB = 1073741824


def load(path):
    """The records of FILE, in order; blank lines are skipped."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def median(values):
    """The median of VALUES (numbers), or None when there are none."""
    values = list(values)
    return statistics.median(values) if values else None


def fmt(value, decimals):
    """VALUE with DECIMALS decimals, "-" for None."""
    return "-" if value is None else f"{value:.{decimals}f}"


def same_or_range(values, decimals=0):
    """VALUES (numbers) as printed with DECIMALS: the one figure when every value prints the same,
    else "MIN..MAX"; "-" without any."""
    values = list(values)
    if not values:
        return "-"
    low, high = fmt(min(values), decimals), fmt(max(values), decimals)
    return low if low == high else f"{low}..{high}"


def median_text(values, decimals):
    return fmt(median(values), decimals)


def ratio(a, b):
    """a / b of two printed figures, two decimals; "-" when either is "-" or b is 0."""
    if a in ("-", "") or b in ("-", ""):
        return "-"
    if float(b) == 0:
        return "-"
    return f"{float(a) / float(b):.2f}"


def target_status(value, op, target):
    """PASS, FAIL or n/a for a printed VALUE against TARGET."""
    if value in ("-", ""):
        return "n/a"
    if op == "<=":
        return "PASS" if float(value) <= float(target) else "FAIL"
    if op == ">=":
        return "PASS" if float(value) >= float(target) else "FAIL"
    try:
        met = float(value) == float(target)
    except ValueError:
        met = value == target
    return "PASS" if met else "FAIL"


class Report:
    def __init__(self, out):
        self.out = out
        self.muted = False  # a part not asked for still records its targets, for the summary
        self.targets = []

    def line(self, text=""):
        if not self.muted:
            self.out.write(text + "\n")

    def target(self, name, value, op, target):
        self.targets.append((target_status(value, op, target), name, value, op, target))

    def summary(self):
        self.line()
        self.line("summary:")
        for status, name, value, op, target in self.targets:
            self.line(f"  {status:<4}  {name:<62} {value:>8}  (target {op} {target})")
        met = sum(1 for t in self.targets if t[0] == "PASS")
        self.line(f"  {met} of {len(self.targets)} targets met")


def valid(records):
    return [r for r in records if r.get("valid", True)]


# --- bench-proxy -----------------------------------------------------------------------------------

SERVERS = ("pt", "r2", "ng")


class Proxy:
    """The report of scripts/bench-proxy from its records (each with run and server, and valid
    plus why, a list of reasons, when the script found the run invalid):
    meta            the run's parameters (runs, blob size, clients, tick, ...)
    server          per server: label, URL, address, negotiated TLS, leaf key
    a               (a) one warm measurement: bytes, gets [[code, size, seconds]...], the
                    server's user_ticks and sys_ticks over them
    c               (c) one wrk run: requests, rps, the server's cpu_ticks meanwhile
    d               (d) one pull by many clients: clients, bytes, hwm_kib, rss0_kib, wall,
                    cpu_ticks, results [[code, size, seconds]...]
    b               (b) one cold pull: round (lo|wan), clients, wall, upstream_gets, hwm_kib,
                    notes, results
    e               (e) one warm measurement of pullthrough as in a, with pull public|private
    upstream_extra  blob GETs the upstream served during the warm sections (part a, or d)
    """

    def __init__(self, records, out):
        self.r = Report(out)
        self.records = records
        metas = [x for x in records if x["kind"] == "meta"]
        self.meta = metas[-1] if metas else {}
        self.label = {x["server"]: x["label"] for x in records if x["kind"] == "server"}
        for s, name in (("pt", "pullthrough"), ("r2", "registry:2 proxy"), ("ng", "nginx")):
            self.label.setdefault(s, name)

    def of(self, kind, **match):
        return [x for x in self.records
                if x["kind"] == kind and all(x.get(k) == v for k, v in match.items())]

    def invalid_lines(self, records, what=None):
        """The INVALID (and note) lines of RECORDS, in the order they were measured."""
        for x in records:
            for note in x.get("notes", []):
                self.r.line(f"  run {x['run']} {self.label[x['server']]}: {note}")
            extra = f" ({what(x)})" if what else ""
            if not x.get("valid", True):
                for why in x.get("why", []):
                    self.r.line(f"  run {x['run']} {self.label[x['server']]}{extra}: INVALID: {why}")

    def invalid_notes(self, servers, records):
        for s in servers:
            n = sum(1 for x in records if x["server"] == s and not x.get("valid", True))
            if n:
                self.r.line(f"  {self.label[s]}: {n} invalid run(s) left out (see above)")

    def upstream_note(self, part, during):
        for x in self.of("upstream_extra", part=part):
            if x["gets"]:
                self.r.line(f"  note: upstream served the blob {x['gets']} more time(s) during {during}")

    # Per-run figures -------------------------------------------------------------------------
    def a_figures(self, x):
        """(CPU s/GiB, MB/s, user s/GiB, kernel s/GiB) of one (a) measurement."""
        tick = self.meta["tick"]
        n, size = len(x["gets"]), x["bytes"]
        gib = n * size / GIB
        seconds = sum(float(g[2]) for g in x["gets"])
        u, k = x["user_ticks"], x["sys_ticks"]
        return ((u + k) / tick / gib, n * size / seconds / 1e6, u / tick / gib, k / tick / gib)

    def c_figures(self, x):
        """(requests/s, CPU us per request) of one wrk run."""
        return (float(x["rps"]), x["cpu_ticks"] / self.meta["tick"] * 1e6 / float(x["requests"]))

    def d_figures(self, x):
        """(peak RSS MiB, RSS before MiB, wall s, total MB/s, CPU s/GiB, first done s)."""
        total = x["clients"] * x["bytes"]
        wall = float(x["wall"])
        return (x["hwm_kib"] / 1024, x["rss0_kib"] / 1024, wall, total / wall / 1e6,
                x["cpu_ticks"] / self.meta["tick"] / (total / GIB),
                min(float(c[2]) for c in x["results"]))

    # Parts -----------------------------------------------------------------------------------
    def header(self):
        m = self.meta
        self.r.line(f"bench-proxy: {m['runs']} runs, blob {m['blob_mib']} MiB ({m['digest']}), "
                    f"manifest {m['manifest_bytes']} bytes, {m['cores']} cores")
        self.r.line(f"  upstream: docker-registry https://{m['up_name']} ({m['up_addr']}); clients: "
                    f"curl --http1.1 --tls13-ciphers {m['tls13']}, wrk -t{m['wrk_threads']} "
                    f"-c{m['wrk_connections']} -d{m['wrk_seconds']}s")
        row = "  {:<17} {:<37} {:<28} {:<28} {}"
        self.r.line(row.format("server", "address", "TLS with curl's settings",
                               "TLS with wrk's (defaults)", "leaf key"))
        for x in self.of("server"):
            self.r.line(row.format(x["label"], f"{x['url']} ({x['addr']})", x["tls_curl"],
                                   x["tls_default"], x["key"]))

    def a(self):
        m = self.meta
        self.r.line()
        self.r.line(f"(a) warm {m['blob_mib']} MiB blob GET, one client at a time "
                    f"(x{m['reps']} per measurement), median of {m['runs']}")
        recs = self.of("a")
        self.invalid_lines(recs)
        # user and kernel are medians of their own, so they need not add up to the total exactly.
        row = "  {:<17} {:>10} {:>7} {:>7} {:>8}   {}"
        self.r.line(row.format("server", "CPU s/GiB", "user", "kernel", "MB/s", "per run (CPU s/GiB)"))
        cpu, mbs = {}, {}
        for s in SERVERS:
            figs = [self.a_figures(x) for x in valid(recs) if x["server"] == s]
            cpu[s] = median_text((f[0] for f in figs), 3)
            mbs[s] = median_text((f[1] for f in figs), 0)
            self.r.line(row.format(self.label[s], cpu[s], median_text((f[2] for f in figs), 3),
                                   median_text((f[3] for f in figs), 3), mbs[s],
                                   " ".join(fmt(f[0], 3) for f in figs)).rstrip())
        self.invalid_notes(SERVERS, recs)
        vs_ng, vs_r2 = ratio(cpu["pt"], cpu["ng"]), ratio(cpu["pt"], cpu["r2"])
        self.r.line(f"  CPU/GiB pullthrough / nginx      {vs_ng:>6}   (target <= 0.9)")
        self.r.line(f"  CPU/GiB pullthrough / registry:2 {vs_r2:>6}   (target <= 0.9)")
        self.r.line(f"  MB/s    pullthrough / nginx      {ratio(mbs['pt'], mbs['ng']):>6}   "
                    f"pullthrough / registry:2 {ratio(mbs['pt'], mbs['r2'])}")
        self.r.target("(a) warm blob CPU/GiB, pullthrough / nginx", vs_ng, "<=", "0.9")
        self.r.target("(a) warm blob CPU/GiB, pullthrough / registry:2", vs_r2, "<=", "0.9")
        self.upstream_note("a", "(a)")

    def c(self):
        m = self.meta
        self.r.line()
        self.r.line(f"(c) manifest GET by tag, keep-alive TLS, wrk -t{m['wrk_threads']} "
                    f"-c{m['wrk_connections']} -d{m['wrk_seconds']}s, median of {m['runs']}")
        recs = self.of("c")
        self.invalid_lines(recs)
        row = "  {:<17} {:>12} {:>13}   {}"
        self.r.line(row.format("server", "requests/s", "CPU us/req", "per run (requests/s)"))
        rps, us = {}, {}
        for s in SERVERS:
            figs = [self.c_figures(x) for x in valid(recs) if x["server"] == s]
            rps[s] = median_text((f[0] for f in figs), 0)
            us[s] = median_text((f[1] for f in figs), 1)
            self.r.line(row.format(self.label[s], rps[s], us[s],
                                   " ".join(fmt(f[0], 0) for f in figs)).rstrip())
        self.invalid_notes(SERVERS, recs)
        vs_ng, vs_r2 = ratio(rps["pt"], rps["ng"]), ratio(rps["pt"], rps["r2"])
        cpu_vs_ng = ratio(us["pt"], us["ng"])
        self.r.line(f"  CPU/req    pullthrough / nginx      {cpu_vs_ng:>8}   (target <= 1.5)")
        self.r.line(f"  requests/s pullthrough / nginx      {vs_ng:>8}   (target >= 0.5)")
        self.r.line(f"  requests/s pullthrough / registry:2 {vs_r2:>8}   (target >= 20)")
        self.r.target("(c) manifest CPU/request, pullthrough / nginx", cpu_vs_ng, "<=", "1.5")
        self.r.target("(c) manifest requests/s, pullthrough / nginx", vs_ng, ">=", "0.5")
        self.r.target("(c) manifest requests/s, pullthrough / registry:2", vs_r2, ">=", "20")

    def d(self):
        m = self.meta
        self.r.line()
        self.r.line(f"(d) peak RSS (VmHWM) while {m['warm_clients']} clients pull the "
                    f"{m['blob_mib']} MiB blob warm at once, median of {m['rss_runs']}")
        recs = self.of("d")
        self.invalid_lines(recs)
        row = "  {:<17} {:>14} {:>16} {:>9} {:>14} {:>11} {:>14}"
        self.r.line(row.format("server", "peak RSS MiB", "RSS before MiB", "wall s", "total MB/s",
                               "CPU s/GiB", "first done s"))
        hwm = {}
        for s in ("pt", "r2"):
            figs = [self.d_figures(x) for x in valid(recs) if x["server"] == s]
            cols = [median_text((f[i] for f in figs), d) for i, d in enumerate((1, 1, 2, 0, 3, 2))]
            hwm[s] = cols[0]
            self.r.line(row.format(self.label[s], *cols))
        self.invalid_notes(("pt", "r2"), recs)
        self.r.line("  (wall: until the last client is done; first done: the fastest client's own time)")
        self.r.target(f"(d) pullthrough peak RSS, {m['warm_clients']} warm clients (MiB)", hwm["pt"],
                      "<=", "64")
        self.upstream_note("d", "(c)/(d)")

    def cold(self, rnd):
        """One (b) round: the table; returns (wall ratio, upstream GETs, peak RSS) of pullthrough."""
        m = self.meta
        n = m["cold_clients"]
        recs = self.of("b", round=rnd)
        servers = [s for s in SERVERS if any(x["server"] == s for x in recs)]
        self.invalid_lines(recs, lambda x: f"{x['clients']} clients")
        row = "  {:<17} {:>9} {:>9} {:>11} {:>19} {:>19} {:>18}"
        self.r.line(row.format("server", "wall(1) s", f"wall({n}) s", "wall ratio",
                               "upstream GETs (1)", f"upstream GETs ({n})", f"peak RSS MiB ({n})"))
        w1, w8 = {}, {}
        for s in servers:
            one = [x for x in valid(recs) if x["server"] == s and x["clients"] == 1]
            many = [x for x in valid(recs) if x["server"] == s and x["clients"] != 1]
            w1[s] = median_text((float(x["wall"]) for x in one), 2)
            w8[s] = median_text((float(x["wall"]) for x in many), 2)
            if s == "ng":  # static files: no upstream, and not a cache
                g1 = g8 = hwm = "-"
            else:
                g1 = " ".join(str(x["upstream_gets"]) for x in one) or "-"
                g8 = " ".join(str(x["upstream_gets"]) for x in many) or "-"
                hwm = median_text((x["hwm_kib"] / 1024 for x in many), 1)
            self.r.line(row.format(self.label[s], w1[s], w8[s], ratio(w8[s], w1[s]), g1, g8, hwm))
        self.invalid_notes(servers, recs)
        return ratio(w8.get("pt", "-"), w1.get("pt", "-")), self.fetch_count(recs), self.cold_hwm(recs)

    def fetch_count(self, recs):
        """"1" when every pullthrough run made the same number N of upstream GETs ("N"), else
        "MIN..MAX"; "-" after an invalid pullthrough run or without any."""
        pt = [x for x in recs if x["server"] == "pt"]
        if not pt or not all(x.get("valid", True) for x in pt):
            return "-"
        return same_or_range(x["upstream_gets"] for x in pt)

    def cold_hwm(self, recs):
        return median_text((x["hwm_kib"] / 1024 for x in valid(recs)
                            if x["server"] == "pt" and x["clients"] != 1), 1)

    def b_lo(self):
        m = self.meta
        n = m["cold_clients"]
        self.r.line()
        self.r.line(f"(b) cold {m['blob_mib']} MiB blob: 1 client, then {n} concurrent clients, "
                    f"each on a fresh cache, median of {m['runs']}")
        wall_ratio, fetches, hwm = self.cold("lo")
        self.r.line(f"  (upstream GETs: one figure per run; peak RSS: VmHWM since a fresh start, "
                    f"after the {n}-way pull;")
        self.r.line("   nginx: the same pulls of its static file, warm, as the floor of what this "
                    "machine's cores allow)")
        self.r.target("(b) pullthrough upstream GETs per cold blob, every run", fetches, "==", "1")
        self.r.target(f"(b) pullthrough wall({n} cold) / wall(1 cold), loopback upstream", wall_ratio,
                      "<=", "1.2")
        self.r.target(f"(d) pullthrough peak RSS, fresh start + {n} cold clients (MiB)", hwm, "<=", "64")

    def b_wan(self):
        m = self.meta
        if not m.get("upstream_mbit"):
            return
        n = m["cold_clients"]
        self.r.line()
        self.r.line(f"(b) the same with upstream's traffic shaped to {m['upstream_mbit']} Mbit/s "
                    f"(tc on lo, source {m['up_addr']} only), median of {m['runs']}")
        wall_ratio, fetches, _ = self.cold("wan")
        self.r.target("(b) pullthrough upstream GETs per cold blob, shaped upstream, every run",
                      fetches, "==", "1")
        self.r.target(f"(b) pullthrough wall({n} cold) / wall(1 cold), shaped upstream", wall_ratio,
                      "<=", "1.2")

    def e(self):
        m = self.meta
        self.r.line()
        self.r.line(f"(e) pullthrough: warm {m['blob_mib']} MiB blob GET from a private repository "
                    f"with a user's token, against a public one anonymously "
                    f"(x{m['reps']} per measurement), median of {m['runs']}")
        recs = self.of("e")
        self.invalid_lines(recs, lambda x: x["pull"])
        row = "  {:<17} {:>10} {:>7} {:>7} {:>8}   {}"
        self.r.line(row.format("pull", "CPU s/GiB", "user", "kernel", "MB/s", "per run (CPU s/GiB)"))
        cpu = {}
        for kind in ("public", "private"):
            figs = [self.a_figures(x) for x in valid(recs) if x["pull"] == kind]
            cpu[kind] = median_text((f[0] for f in figs), 3)
            self.r.line(row.format(kind, cpu[kind], median_text((f[2] for f in figs), 3),
                                   median_text((f[3] for f in figs), 3),
                                   median_text((f[1] for f in figs), 0),
                                   " ".join(fmt(f[0], 3) for f in figs)).rstrip())
        for kind in ("public", "private"):
            n = sum(1 for x in recs if x["pull"] == kind and not x.get("valid", True))
            if n:
                self.r.line(f"  {kind}: {n} invalid run(s) left out (see above)")
        asked = [x["gets"] for x in self.of("upstream_extra", part="e")]
        upstream = str(asked[-1]) if asked else "-"
        self.r.line(f"  requests upstream for bench/* during the measured pulls: {upstream}"
                    f"   (target == 0: each client's access is checked once and remembered)")
        self.r.target("(e) upstream requests during the measured private and public pulls",
                      upstream, "==", "0")
        vs_public = ratio(cpu["private"], cpu["public"])
        self.r.line(f"  CPU/GiB private / public   {vs_public:>6}   (target <= 1.2)")
        self.r.target("(e) warm blob CPU/GiB, private (per-client check) / public", vs_public,
                      "<=", "1.2")

    PARTS = ("header", "a", "c", "d", "b-lo", "b-wan", "e", "summary")

    def print(self, parts):
        # Every section runs, in order, so that the summary has the targets of all of them.
        for part in self.PARTS:
            self.r.muted = part not in parts
            if part == "summary":
                if not self.r.muted:
                    self.r.summary()
            else:
                getattr(self, part.replace("-", "_"))()


# --- bench-dns -------------------------------------------------------------------------------------

class Dns:
    """The report of scripts/bench-dns from its records:
    meta  runs, seconds, threads, clients, tick
    run   one dnsperf run: workload, server (pt|ub), qps, avg_s, max_s, completed, cpu_ticks
    """

    PARTS = ("header", "intercepted", "forwarded")

    def __init__(self, records, out):
        self.r = Report(out)
        self.records = records
        metas = [x for x in records if x["kind"] == "meta"]
        self.meta = metas[-1] if metas else {}

    def figures(self, x):
        """(qps, avg ms, max ms, CPU us per query) of one run; CPU 0 when nothing completed."""
        done = x["completed"]
        cpu = x["cpu_ticks"] / self.meta["tick"] * 1e6 / done if done > 0 else 0
        return (float(x["qps"]), float(x["avg_s"]) * 1000, float(x["max_s"]) * 1000, cpu)

    def header(self):
        m = self.meta
        self.r.line(f"bench-dns: {m['runs']} runs of {m['seconds']}s, dnsperf with {m['threads']} "
                    f"threads and {m['clients']} client sockets, {m['threads']} server threads")

    def workload(self, workload):
        cols = {}
        for s in ("pt", "ub"):
            figs = [self.figures(x) for x in valid(self.records)
                    if x["kind"] == "run" and x["workload"] == workload and x["server"] == s]
            cols[s] = [median_text((f[i] for f in figs), d) for i, d in enumerate((0, 3, 3, 2))]
        pt, ub = cols["pt"], cols["ub"]

        # QPS pullthrough / Unbound, and CPU per query Unbound / pullthrough (above 1: pullthrough
        # spends less); 0.00 when the divisor is not positive, as the shell script printed.
        def over(a, b):
            return f"{float(a) / float(b):.2f}" if a != "-" and b != "-" and float(b) > 0 else "0.00"

        self.r.line(f"{workload:<12} pullthrough {pt[0]:>7} qps avg {pt[1]:>5} ms max {pt[2]:>6} ms "
                    f"{pt[3]:>5} us/query | unbound {ub[0]:>7} qps avg {ub[1]:>5} ms max {ub[2]:>6} ms "
                    f"{ub[3]:>5} us/query | qps ratio {over(pt[0], ub[0])}, "
                    f"cpu ratio {over(ub[3], pt[3])}")

    def intercepted(self):
        self.workload("intercepted")

    def forwarded(self):
        self.workload("forwarded")

    def print(self, parts):
        for part in parts:
            getattr(self, part)()


# --- bench-storage ---------------------------------------------------------------------------------


class Storage:
    """The report of scripts/bench-storage from its records:
    meta  the run's parameters (runs, blob_mib, bytes, tick, clients, warm_pulls, tls, s3_server)
    pull  one measurement: backend (fs|s3), run, temp (cold|warm), clients, pulls, bytes, wall,
          pt_ticks and s3_ticks (pullthrough's and the S3 server's CPU over it), s3 (pullthrough's
          S3 requests by operation, every attempt), s3_ok (those answered 2xx), upstream_gets (of
          the layer), results [[code, size, s]...]
    """

    PARTS = ("header", "table", "summary")
    ROWS = (("warm", False), ("cold", False), ("warm", True), ("cold", True))

    def __init__(self, records, out):
        self.r = Report(out)
        self.records = records
        metas = [x for x in records if x["kind"] == "meta"]
        self.meta = metas[-1] if metas else {}

    def of(self, backend, temp, many):
        return [x for x in self.records if x["kind"] == "pull" and x["backend"] == backend
                and x["temp"] == temp and (x["clients"] > 1) == many]

    def figures(self, x):
        """(client MB/s, pullthrough CPU s/GiB, S3 server CPU s/GiB, S3 GETs per blob pulled, S3
        requests per pull) of one measurement. One client: its bytes over its own transfer times;
        several: all bytes over the wall time."""
        tick = self.meta["tick"]
        total = x["pulls"] * x["bytes"]
        if x["clients"] == 1:
            seconds = sum(float(res[2]) for res in x["results"])
        else:
            seconds = float(x["wall"]) * x["pulls"] / x["clients"]
        gib = total / GIB
        s3 = x.get("s3", {})
        return (total / seconds / 1e6 if seconds > 0 else 0.0, x["pt_ticks"] / tick / gib,
                x["s3_ticks"] / tick / gib,
                s3.get("get", 0) / (x["pulls"] * self.meta["blobs_per_pull"]),
                sum(s3.values()) / x["pulls"])

    def header(self):
        m = self.meta
        self.r.line(f"bench-storage: {m['runs']} runs, layer {m['blob_mib']} MiB ({m['digest']}), "
                    f"{m['cores']} cores; a pull is a GET of the manifest by tag, the config, the layer")
        self.r.line(f"  S3 server: {m['s3_server']} {m['s3_version']}, a local fake over plain http "
                    f"on loopback; clients: curl --http1.1 --tls13-ciphers {m['tls13']} "
                    f"(negotiated: {m['tls'] or '?'})")
        self.r.line(f"  warm, 1 client: {m['warm_pulls']} pulls in a row; {m['clients']} clients: "
                    "concurrent pulls; cold: a fresh cache each time")

    def table(self):
        m = self.meta
        self.r.line()
        self.r.line(f"medians of {m['runs']} runs (CPU: seconds per GiB delivered to the clients; "
                    "cold includes the upload)")
        row = "  {:<16} {:>9} {:>9} | {:>9} {:>9} {:>9} {:>8} {:>8} | {:>9}"
        self.r.line(row.format("", "fs MB/s", "fs CPU", "s3 MB/s", "s3 CPU", "S3 srv", "GET/blob",
                               "req/pull", "CPU s3/fs"))
        ratios = {}
        for temp, many in self.ROWS:
            name = f"{temp}, {m['clients'] if many else 1} client{'s' if many else ''}"
            cols = {}
            for backend in ("fs", "s3"):
                figs = [self.figures(x) for x in valid(self.of(backend, temp, many))]
                cols[backend] = [median_text((f[i] for f in figs), d)
                                 for i, d in enumerate((0, 3, 3, 2, 2))]
            fs, s3 = cols["fs"], cols["s3"]
            ratios[(temp, many)] = ratio(s3[1], fs[1])
            self.r.line(row.format(name, fs[0], fs[1], s3[0], s3[1], s3[2], s3[3], s3[4],
                                   ratios[(temp, many)]))
        self.r.line("  (MB/s of layer bytes; CPU: pullthrough's; S3 srv: the S3 server's CPU, apart; "
                    "GET/blob: S3 GETs per blob pulled; req/pull: every S3 request per pull)")
        for backend in ("fs", "s3"):
            for x in self.records:
                if x["kind"] == "pull" and x["backend"] == backend and not x.get("valid", True):
                    for why in x.get("why", []):
                        self.r.line(f"  run {x['run']} {backend} {x['temp']} x{x['clients']}: "
                                    f"INVALID: {why}")
        self.r.line()
        self.r.line("per run (run 1, 2, ...):")
        ops = {}
        for temp, many in self.ROWS:
            for x in self.of("s3", temp, many):
                key = f"{temp} x{x['clients']}"
                ops.setdefault(key, []).append(
                    " ".join(f"{k}={v / x['pulls']:g}" for k, v in sorted(x.get("s3", {}).items())))
        for key, lines in ops.items():
            self.r.line(f"  S3 requests per pull, {key}: " + " | ".join(lines))
        gets = {}
        for backend in ("fs", "s3"):
            for temp in ("cold", "warm"):
                for many in (False, True):
                    gets[(backend, temp, many)] = [x["upstream_gets"] for x in
                                                   self.of(backend, temp, many)]
        for backend in ("fs", "s3"):
            self.r.line(f"  upstream GETs of the layer, {backend}: cold x1 "
                        f"{gets[(backend, 'cold', False)]}, cold x{m['clients']} "
                        f"{gets[(backend, 'cold', True)]}, warm "
                        f"{[a + b for a, b in zip(gets[(backend, 'warm', False)], gets[(backend, 'warm', True)])]}")
        uploads = [x.get("s3_ok", {}).get("put", 0) + x.get("s3_ok", {}).get("complete_multipart", 0)
                   for x in self.of("s3", "cold", True)]
        self.r.line(f"  objects uploaded (PUT + completed multipart, 2xx), s3 cold x{m['clients']}: "
                    f"{uploads}")

        warm_gets = [self.figures(x)[3] for many in (False, True)
                     for x in valid(self.of("s3", "warm", many))]
        cold8 = self.of("fs", "cold", True) + self.of("s3", "cold", True)
        self.r.target("warm, 1 client: CPU per GiB, s3 / fs", ratios[("warm", False)], "<=", "1.3")
        self.r.target(f"warm, {m['clients']} clients: CPU per GiB, s3 / fs",
                      ratios[("warm", True)], "<=", "1.3")
        self.r.target("S3 GETs per blob of a warm pull, every run",
                      same_or_range(warm_gets, 2), "==", "1.00")
        self.r.target(f"cold, {m['clients']} clients: upstream GETs of the layer, every run",
                      same_or_range(x["upstream_gets"] for x in cold8), "==", "1")
        self.r.target(f"cold, {m['clients']} clients on s3: objects uploaded, every run",
                      same_or_range(uploads), "==", "3")

    def summary(self):
        self.r.summary()

    def print(self, parts):
        if "summary" in parts and "table" not in parts:
            self.r.muted = True  # the targets come from the table
            self.table()
            self.r.muted = False
        for part in parts:
            getattr(self, part)()


def main(argv):
    kinds = {"proxy": Proxy, "dns": Dns, "storage": Storage}
    if len(argv) < 3 or argv[1] not in kinds:
        sys.stderr.write(__doc__)
        return 2
    cls = kinds[argv[1]]
    parts = argv[3:] or list(cls.PARTS)
    unknown = [p for p in parts if p not in cls.PARTS]
    if unknown:
        sys.stderr.write(f"bench_report: unknown part(s) {' '.join(unknown)}; "
                         f"parts: {' '.join(cls.PARTS)}\n")
        return 2
    cls(load(argv[2]), sys.stdout).print(parts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
