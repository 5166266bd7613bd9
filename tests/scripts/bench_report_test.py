"""Tests of scripts/bench_report.py: the statistics and the report of the bench scripts.

    python3 -m unittest tests/scripts/bench_report_test.py     (from the repository's root)
    python3 tests/scripts/bench_report_test.py                 (from anywhere)
"""

import io
import pathlib
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts"))

import bench_report  # noqa: E402  (found through the path above)

GIB = 1073741824
MIB = 1048576


def proxy_meta(**overrides):
    meta = {"kind": "meta", "runs": 3, "blob_mib": 16, "bytes": 16 * MIB, "digest": "sha256:00",
            "manifest_bytes": 402, "cores": 2, "tick": 100, "up_name": "origin.bench.test",
            "up_addr": "127.0.1.10", "tls13": "TLS_AES_128_GCM_SHA256", "wrk_threads": 2,
            "wrk_connections": 32, "wrk_seconds": 2, "warm_clients": 5, "rss_runs": 1,
            "cold_clients": 8, "reps": 64, "upstream_mbit": 0}
    meta.update(overrides)
    return meta


def warm(run, server, cpu_ticks, valid=True, why=()):
    """An (a) record: 64 GETs of 16 MiB (1 GiB in all) in 2 s, CPU_TICKS (user, kernel) at 100/s."""
    return {"kind": "a", "run": run, "server": server, "bytes": 16 * MIB,
            "user_ticks": cpu_ticks[0], "sys_ticks": cpu_ticks[1],
            "gets": [["200", str(16 * MIB), "0.03125"]] * 64, "valid": valid, "why": list(why)}


def wrk(run, server, rps, valid=True):
    if not valid:
        return {"kind": "c", "run": run, "server": server, "valid": False,
                "why": ["Non-2xx or Non-3xx responses: 12 (1000 requests in 2.00s)"]}
    return {"kind": "c", "run": run, "server": server, "requests": str(int(rps * 2)),
            "rps": str(rps), "cpu_ticks": 100, "valid": True}


def cold(rnd, run, server, clients, wall, gets=1, hwm_kib=20480, valid=True):
    if not valid:
        return {"kind": "b", "round": rnd, "run": run, "server": server, "clients": clients,
                "valid": False, "why": [" 8 000 0 0.001"]}
    return {"kind": "b", "round": rnd, "run": run, "server": server, "clients": clients,
            "wall": f"{wall:.2f}", "upstream_gets": gets, "hwm_kib": hwm_kib, "notes": [],
            "results": [["200", str(16 * MIB), f"{wall:.2f}"]] * clients, "valid": True}


KINDS = {"proxy": bench_report.Proxy, "dns": bench_report.Dns, "storage": bench_report.Storage}


def report(kind, records, *parts):
    out = io.StringIO()
    KINDS[kind](records, out).print(list(parts) or list(KINDS[kind].PARTS))
    return out.getvalue()


def row(text, first):
    """The line of TEXT that starts (after the indent) with FIRST, split into fields."""
    for line in text.splitlines():
        if line.strip().startswith(first):
            return line.split()
    raise AssertionError(f"no line starting with {first!r} in:\n{text}")


class MedianTest(unittest.TestCase):
    def test_odd_count_is_the_middle_value(self):
        self.assertEqual(bench_report.median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(bench_report.median([5.0]), 5.0)

    def test_even_count_is_the_mean_of_the_two_middle_values(self):
        self.assertEqual(bench_report.median([4.0, 1.0, 3.0, 2.0]), 2.5)
        self.assertEqual(bench_report.median([1.0, 10.0]), 5.5)

    def test_no_value_prints_a_dash(self):
        self.assertIsNone(bench_report.median([]))
        self.assertEqual(bench_report.median_text([], 3), "-")

    def test_printed_with_fixed_decimals(self):
        self.assertEqual(bench_report.median_text([1.0, 2.0, 1.7204], 3), "1.720")
        self.assertEqual(bench_report.median_text([604.4], 0), "604")


class SameOrRangeTest(unittest.TestCase):
    def test_one_figure_when_all_print_the_same(self):
        self.assertEqual(bench_report.same_or_range([1, 1, 1]), "1")
        self.assertEqual(bench_report.same_or_range([1.0, 1.001], 2), "1.00")

    def test_a_range_ordered_by_value_not_by_text(self):
        self.assertEqual(bench_report.same_or_range([2, 10, 3]), "2..10")

    def test_nothing_is_a_dash(self):
        self.assertEqual(bench_report.same_or_range([]), "-")


class RatioTest(unittest.TestCase):
    def test_ratio_of_the_printed_figures_with_two_decimals(self):
        self.assertEqual(bench_report.ratio("1.720", "2.200"), "0.78")
        self.assertEqual(bench_report.ratio("20909", "167"), "125.20")

    def test_a_missing_side_or_a_zero_divisor_is_a_dash(self):
        self.assertEqual(bench_report.ratio("-", "2.200"), "-")
        self.assertEqual(bench_report.ratio("1.720", "-"), "-")
        self.assertEqual(bench_report.ratio("1.720", "0.000"), "-")


class TargetTest(unittest.TestCase):
    def test_operators(self):
        self.assertEqual(bench_report.target_status("1.00", "<=", "1.0"), "PASS")
        self.assertEqual(bench_report.target_status("1.01", "<=", "1.0"), "FAIL")
        self.assertEqual(bench_report.target_status("0.50", ">=", "0.5"), "PASS")
        self.assertEqual(bench_report.target_status("1", "==", "1"), "PASS")
        self.assertEqual(bench_report.target_status("1..2", "==", "1"), "FAIL")

    def test_no_figure_is_not_applicable_and_not_met(self):
        self.assertEqual(bench_report.target_status("-", "<=", "64"), "n/a")
        r = bench_report.Report(io.StringIO())
        r.target("a", "-", "<=", "64")
        r.target("b", "1", "==", "1")
        r.summary()
        self.assertIn("n/a ", r.out.getvalue())
        self.assertIn("1 of 2 targets met", r.out.getvalue())


class ProxyReportTest(unittest.TestCase):
    def test_warm_medians_and_ratios(self):
        # CPU s/GiB per run: pullthrough 1.0, 1.2, 1.4 -> 1.200; nginx 1.5, 2.0, 2.5 -> 2.000.
        recs = [proxy_meta()]
        for run, (pt, ng) in enumerate(((50, 75), (60, 100), (70, 125)), start=1):
            recs += [warm(run, "pt", (pt, pt)), warm(run, "ng", (ng, ng)),
                     warm(run, "r2", (100, 100))]
        out = report("proxy", recs, "a")
        self.assertEqual(row(out, "pullthrough")[1:6], ["1.200", "0.600", "0.600", "537", "1.000"])
        self.assertEqual(row(out, "nginx")[1], "2.000")
        self.assertEqual(row(out, "CPU/GiB pullthrough / nginx")[4], "0.60")
        self.assertEqual(row(out, "CPU/GiB pullthrough / registry:2")[4], "0.60")

    def test_an_invalid_run_is_reported_and_left_out_of_the_medians(self):
        recs = [proxy_meta(),
                warm(1, "pt", (50, 50)),
                warm(2, "pt", (5000, 5000), valid=False, why=["status 502, 0 of 16777216 bytes"]),
                warm(3, "pt", (70, 70))]
        recs += [warm(r, s, (100, 100)) for r in (1, 2, 3) for s in ("r2", "ng")]
        out = report("proxy", recs, "a")
        # Left out: the median of the two valid runs (1.0 and 1.4 s/GiB), not of all three.
        self.assertEqual(row(out, "pullthrough")[1], "1.200")
        self.assertEqual(row(out, "pullthrough")[5:], ["1.000", "1.400"])
        self.assertIn("  run 2 pullthrough: INVALID: status 502, 0 of 16777216 bytes", out)
        self.assertIn("  pullthrough: 1 invalid run(s) left out (see above)", out)
        self.assertNotIn("registry:2 proxy: ", out)

    def test_invalid_wrk_run_left_out_of_requests_per_second(self):
        recs = [proxy_meta(), wrk(1, "pt", 20000), wrk(2, "pt", 99999, valid=False),
                wrk(3, "pt", 22000)]
        recs += [wrk(r, "ng", 42000) for r in (1, 2, 3)] + [wrk(r, "r2", 200) for r in (1, 2, 3)]
        out = report("proxy", recs, "c")
        self.assertEqual(row(out, "pullthrough")[1], "21000")
        self.assertEqual(row(out, "requests/s pullthrough / nginx")[4], "0.50")
        self.assertEqual(row(out, "requests/s pullthrough / registry:2")[4], "105.00")
        # 100 ticks over 40,000 and 44,000 requests: 25.0 and 22.7 us, median 23.9; nginx 11.9.
        self.assertEqual(row(out, "pullthrough")[2], "23.9")
        self.assertEqual(row(out, "CPU/req")[4], "2.01")
        self.assertIn("run 2 pullthrough: INVALID: Non-2xx", out)

    def test_private_against_public_warm_pulls(self):
        # CPU s/GiB per run: public 1.0, 1.2, 1.1 -> 1.100; private 1.2, 5.0 (invalid), 1.4 -> 1.300.
        recs = [proxy_meta()]
        for run, (pub, priv) in enumerate(((50, 60), (60, 250), (55, 70)), start=1):
            bad = run == 2
            recs.append({**warm(run, "pt", (pub, pub)), "kind": "e", "pull": "public"})
            recs.append({**warm(run, "pt", (priv, priv), valid=not bad,
                                why=["status 401, 0 of 16777216 bytes"] if bad else ()),
                         "kind": "e", "pull": "private"})
        recs.append({"kind": "upstream_extra", "part": "e", "gets": 0})
        out = report("proxy", recs, "e", "summary")
        self.assertIn("PASS  (e) upstream requests during the measured private and public pulls", out)
        self.assertEqual(row(out, "public")[1], "1.100")
        self.assertEqual(row(out, "private")[1], "1.300")
        self.assertEqual(row(out, "CPU/GiB private / public")[4], "1.18")
        self.assertIn("run 2 pullthrough (private): INVALID: status 401, 0 of 16777216 bytes", out)
        self.assertIn("private: 1 invalid run(s) left out (see above)", out)
        self.assertIn("PASS  (e) warm blob CPU/GiB, private (per-client check) / public", out)

    def test_private_pulls_that_went_upstream_fail_their_target(self):
        recs = [proxy_meta(), {"kind": "upstream_extra", "part": "e", "gets": 4}]
        out = report("proxy", recs, "e", "summary")
        self.assertIn("requests upstream for bench/* during the measured pulls: 4", out)
        self.assertIn("FAIL  (e) upstream requests during the measured private and public pulls", out)

    def test_cold_fetch_count_and_summary(self):
        recs = [proxy_meta(runs=1)]
        recs += [cold("lo", 1, "pt", 1, 1.00), cold("lo", 1, "pt", 8, 1.10),
                 cold("lo", 1, "r2", 1, 1.00, gets=2), cold("lo", 1, "r2", 8, 4.00, gets=9),
                 cold("lo", 1, "ng", 1, 0.50), cold("lo", 1, "ng", 8, 2.00)]
        out = report("proxy", recs, "b-lo", "summary")
        self.assertEqual(row(out, "pullthrough")[1:], ["1.00", "1.10", "1.10", "1", "1", "20.0"])
        self.assertEqual(row(out, "nginx")[4:], ["-", "-", "-"])
        self.assertIn("PASS  (b) pullthrough upstream GETs per cold blob, every run", out)
        self.assertIn("PASS  (b) pullthrough wall(8 cold) / wall(1 cold), loopback upstream", out)
        # The sections without records give n/a targets, which are not met.
        self.assertIn("3 of 11 targets met", out)

    def test_cold_fetch_count_range_and_invalid(self):
        p = bench_report.Proxy([proxy_meta()], io.StringIO())
        self.assertEqual(p.fetch_count([cold("lo", 1, "pt", 1, 1.0, gets=1),
                                        cold("lo", 1, "pt", 8, 1.0, gets=2)]), "1..2")
        self.assertEqual(p.fetch_count([cold("lo", 1, "pt", 1, 1.0),
                                        cold("lo", 1, "pt", 8, 1.0, valid=False)]), "-")


def storage_meta(**overrides):
    meta = {"kind": "meta", "runs": 1, "blob_mib": 256, "bytes": 256 * MIB, "digest": "sha256:00",
            "cores": 2, "tick": 100, "tls13": "TLS_AES_128_GCM_SHA256",
            "tls": "TLSv1.3 TLS_AES_128_GCM_SHA256", "s3_server": "moto", "s3_version": "5.0",
            "clients": 8, "warm_pulls": 4, "blobs_per_pull": 2}
    meta.update(overrides)
    return meta


def pull(backend, temp, clients, pulls, pt_ticks, s3=None, s3_ticks=0, gets=0, wall=2.0,
         run=1, valid=True, s3_ok=None):
    """A bench-storage measurement of PULLS pulls of a 256 MiB layer, each taking 0.5 s."""
    return {"kind": "pull", "backend": backend, "run": run, "temp": temp, "clients": clients,
            "pulls": pulls, "bytes": 256 * MIB, "wall": f"{wall:.3f}", "pt_ticks": pt_ticks,
            "s3_ticks": s3_ticks, "s3": s3 or {}, "s3_ok": s3_ok or s3 or {}, "upstream_gets": gets,
            "results": [["200", str(256 * MIB), "0.5"]] * pulls, "valid": valid,
            "why": [] if valid else ["status 502, 0 of 268435456 bytes"]}


def figures(text, first):
    """The figures of the storage table's row that starts with FIRST (3 words), "|" left out."""
    return [f for f in row(text, first)[3:] if f != "|"]


class StorageReportTest(unittest.TestCase):
    def records(self, warm_s3_ticks=120, warm_gets=8):
        # 4 pulls of 256 MiB: 1 GiB, so ticks / 100 are seconds per GiB.
        return [storage_meta(),
                pull("fs", "warm", 1, 4, 100), pull("s3", "warm", 1, 4, warm_s3_ticks,
                                                   s3={"get": warm_gets}, s3_ticks=300),
                pull("fs", "warm", 8, 8, 200), pull("s3", "warm", 8, 8, 260, s3={"get": 16}),
                pull("fs", "cold", 1, 1, 50, gets=1), pull("s3", "cold", 1, 1, 60, gets=1,
                                                         s3={"put": 2, "complete_multipart": 1}),
                pull("fs", "cold", 8, 8, 300, gets=1),
                pull("s3", "cold", 8, 8, 390, gets=1,
                     s3={"put": 3, "create_multipart": 1, "upload_part": 16,
                         "complete_multipart": 1, "get": 0},
                     s3_ok={"put": 2, "create_multipart": 1, "upload_part": 16,
                            "complete_multipart": 1})]

    def test_cpu_per_gib_medians_ratio_and_requests(self):
        out = report("storage", self.records(), "table")
        # warm, 1 client: 4 x 256 MiB in 4 x 0.5 s = 536.87 MB/s; CPU 1.000 and 1.200 s/GiB; the
        # S3 server 3.000 s/GiB; 8 GETs for 4 pulls of 2 blobs: 1.00 per blob; ratio 1.20.
        self.assertEqual(figures(out, "warm, 1 client"),
                         ["537", "1.000", "537", "1.200", "3.000", "1.00", "2.00", "1.20"])
        # warm, 8 clients: 8 x 256 MiB over the wall time, 2 s: 1073.74 MB/s; 2 GiB.
        self.assertEqual(figures(out, "warm, 8 clients"),
                         ["1074", "1.000", "1074", "1.300", "0.000", "1.00", "2.00", "1.30"])
        # A PUT tried twice is one object: the 2xx answers count, not the attempts.
        self.assertIn("objects uploaded (PUT + completed multipart, 2xx), s3 cold x8: [3]", out)

    def test_targets(self):
        out = report("storage", self.records(), "summary")
        self.assertIn("PASS  warm, 1 client: CPU per GiB, s3 / fs", out)
        self.assertIn("PASS  warm, 8 clients: CPU per GiB, s3 / fs", out)
        self.assertIn("PASS  S3 GETs per blob of a warm pull, every run", out)
        self.assertIn("PASS  cold, 8 clients: upstream GETs of the layer, every run", out)
        self.assertIn("PASS  cold, 8 clients on s3: objects uploaded, every run", out)
        self.assertIn("5 of 5 targets met", out)

    def test_costlier_s3_and_a_second_get_fail_their_targets(self):
        out = report("storage", self.records(warm_s3_ticks=140, warm_gets=9), "summary")
        self.assertIn("FAIL  warm, 1 client: CPU per GiB, s3 / fs", out)
        self.assertIn("FAIL  S3 GETs per blob of a warm pull, every run", out)
        self.assertIn("1.00..1.12", out)  # 9 GETs for 8 blobs in one run, 1.00 in the other

    def test_an_invalid_run_is_reported_and_left_out(self):
        recs = self.records() + [pull("s3", "warm", 1, 4, 999, run=2, valid=False)]
        out = report("storage", recs, "table")
        self.assertIn("run 2 s3 warm x1: INVALID: status 502", out)
        self.assertEqual(figures(out, "warm, 1 client")[3], "1.200")


class DnsReportTest(unittest.TestCase):
    def test_medians_and_both_ratios(self):
        recs = [{"kind": "meta", "runs": 3, "seconds": 10, "threads": 2, "clients": 8, "tick": 100}]
        for run, (pt, ub) in enumerate(((130000, 100000), (120000, 90000), (140000, 110000)), 1):
            recs.append({"kind": "run", "workload": "intercepted", "server": "pt", "run": run,
                         "qps": str(pt), "avg_s": "0.001", "max_s": "0.005",
                         "completed": pt * 10, "cpu_ticks": pt * 10 // 10000})  # 1.00 us/query
            recs.append({"kind": "run", "workload": "intercepted", "server": "ub", "run": run,
                         "qps": str(ub), "avg_s": "0.0015", "max_s": "0.009",
                         "completed": ub * 10, "cpu_ticks": ub * 10 // 5000})  # 2.00 us/query
        out = report("dns", recs, "intercepted")
        self.assertIn("pullthrough  130000 qps avg 1.000 ms max  5.000 ms  1.00 us/query", out)
        self.assertIn("unbound  100000 qps avg 1.500 ms max  9.000 ms  2.00 us/query", out)
        self.assertIn("qps ratio 1.30, cpu ratio 2.00", out)


if __name__ == "__main__":
    unittest.main()
