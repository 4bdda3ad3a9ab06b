#!/usr/bin/env python3
"""Side-by-side benchmark: this framework vs the BioThings SDK 1.2.2 web layer.

    python benchmarks/bench_vs_biothings.py [--rounds 3] [--duration 15s] [--quiet-wait 60]

What it does, all on this machine:

1. starts the Elasticsearch stub (``$BENCH_DIR/es_stub.py``: canned ES 8 answers, instant),
   pinned to the auxiliary core (``--aux-cpu``, shared with wrk);
2. creates ``--bt-venv`` (default ``/tmp/venv-bt122``) with ``biothings==1.2.2`` from PyPI
   if it is absent, and starts a BioThings 1.2.2 app (``python -m biothings.web``) with
   ``benchmarks/bench_config.py``, pinned to the server core (``--server-cpu``);
3. starts our server (``index.py --conf=benchmarks/bench_config.py --processes=1``, this
   interpreter), pinned to the same server core;
4. runs the wrk matrix of ``$BENCH_DIR/run_bench.sh`` (annotation, query, query_fields,
   query_post = a 20-id batch, metadata) against each, interleaved ours, BioThings, ours, ...
   (``--rounds`` each), waiting for the machine to be quiet before each case (QUIET_WAIT);
5. records the resident size (RSS) of each server after every round;
6. scaling: our server with ``--processes 1`` (one core) vs ``--processes 2`` (both cores),
   interleaved, on the cases of ``--scaling-cases``;
7. prints a markdown report (medians over rounds; ratios ours/BioThings; targets) and
   writes it, with every raw wrk output, under ``--out``.

``$BENCH_DIR`` (``--bench-dir``) defaults to ``../shared/bench`` next to the checkout.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = ["annotation", "query", "query_fields", "query_post", "metadata"]
TARGET_RPS_RATIO = 3.0
TARGET_CPU_RATIO = 1 / 3
TARGET_P99_MS = 20.0


def default_bench_dir():
    for candidate in (os.environ.get("BENCH_DIR"), os.path.join(ROOT, "..", "shared", "bench"),
                      "/work/shared/bench"):
        if candidate and os.path.exists(os.path.join(candidate, "run_bench.sh")):
            return os.path.abspath(candidate)
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


class Proc:
    """A background process, started in its own process group, pinned with taskset."""

    def __init__(self, name, argv, cpus, cwd, env, logdir):
        self.name = name
        self.logfile = open(os.path.join(logdir, f"{name}.log"), "wb")
        if cpus:
            argv = ["taskset", "-c", cpus] + argv
        log(f"start {name}: {' '.join(argv)}")
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.logfile,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.logfile.close()


def wait_http(url, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.logfile.name}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{proc.name} did not answer {url} in {timeout}s; see {proc.logfile.name}")


def tree_pids(pid):
    """pid and all its descendants."""
    out = [pid]
    try:
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                              text=True).stdout.split()
    except OSError:
        kids = []
    for kid in kids:
        out += tree_pids(int(kid))
    return out


def rss_mb(pid):
    """Resident size (MB) of each process of the tree of pid: {pid: MB}."""
    out = {}
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[p] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return out


def ensure_bt_venv(venv, spec):
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(python):
        check = subprocess.run([python, "-c", "import biothings, sys; print(biothings.__version__)"],
                               capture_output=True, text=True)
        if check.returncode == 0:
            return python
    log(f"creating {venv} with {spec}")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", spec], check=True)
    return python


def versions(python, modules):
    code = ("import importlib.metadata as m, platform, json; "
            f"print(json.dumps({{'python': platform.python_version(), "
            f"**{{n: m.version(n) for n in {modules!r}}}}}))")
    # not from the checkout: its own egg-info would shadow the installed biothings
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd="/")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release()}


def start_stub(args, out, procs, extra_env=None):
    """The ES stub on ``args.aux_cpu``, answering; and the environment that points servers at it."""
    stub_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "BIOTHINGS_"))}
    env["BENCH_ES_HOST"] = f"http://127.0.0.1:{stub_port}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    stub = Proc("es_stub", [sys.executable, os.path.join(args.bench_dir, "es_stub.py"),
                            "--port", str(stub_port), "--index", "mygene_test"],
                args.aux_cpu, out, env, out)
    procs.append(stub)
    # the servers read the index mapping and _meta at start-up: the stub must answer first
    wait_http(f"http://127.0.0.1:{stub_port}/", stub)
    return stub, env


def start_server(args, name, processes, cpus, env, out, procs):
    """Our server (``index.py`` with ``bench_config.py``) on ``cpus``, answering: (Proc, base url)."""
    port = free_port()
    p = Proc(name, [args.python, os.path.join(ROOT, "index.py"),
                    f"--conf={os.path.join(HERE, 'bench_config.py')}", f"--port={port}",
                    "--address=127.0.0.1", f"--processes={processes}"], cpus, ROOT, env, out)
    procs.append(p)
    wait_http(f"http://127.0.0.1:{port}/v1/metadata", p)
    return p, f"http://127.0.0.1:{port}"


def run_matrix(args, base_url, server_pid, stub_pid, results_dir, cases, label):
    env = dict(os.environ)
    env.update(ENDPOINTS=" ".join(cases), DURATION=args.duration, WARMUP=args.warmup,
               THREADS=str(args.threads), CONNS=str(args.conns), WRK_CPUS=args.aux_cpu or "",
               SERVER_PIDS=str(server_pid), STUB_PIDS=str(stub_pid), RESULTS_DIR=results_dir,
               QUIET_WAIT=str(args.quiet_wait), QUIET_MAX_PCT=str(args.quiet_max_pct), LABEL=label)
    log(f"wrk matrix {label} -> {results_dir}")
    subprocess.run(["bash", os.path.join(args.bench_dir, "run_bench.sh"), base_url], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    rows = {}
    with open(os.path.join(results_dir, "results.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows[r["case"]] = r
    return rows


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    """runs: list of {case: row}; medians per case."""
    out = {}
    for case in runs[0]:
        rs = [r[case] for r in runs if case in r and "rps" in r[case]]
        if not rs:
            continue
        out[case] = {
            "rps": median([r["rps"] for r in rs]),
            "rps_min": min(r["rps"] for r in rs), "rps_max": max(r["rps"] for r in rs),
            "p50_ms": median([r["p50_us"] for r in rs]) / 1000,
            "p99_ms": median([r["p99_us"] for r in rs]) / 1000,
            "cpu_ms": median([r.get("server_cpu_ms_per_req") for r in rs]),
            "cpu_pct": median([r.get("server_cpu_pct") for r in rs]),
            "foreign_pct": median([r.get("foreign_cpu_pct") for r in rs]),
            "errors": sum(r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
                          + r["errors_status"] for r in rs),
            "check": rs[0]["check_status"], "bytes": rs[0]["check_bytes"],
            "request": f"{rs[0]['method']} {rs[0]['path']}",
            "n": len(rs),
        }
    return out


def fmt(v, spec=".0f"):
    return "" if v is None else format(v, spec)


def misses(ratio, cratio, o):
    out = []
    if ratio is None or ratio < TARGET_RPS_RATIO:
        out.append("req/s")
    if cratio is None or cratio > TARGET_CPU_RATIO:
        out.append("CPU")
    if o["p99_ms"] >= TARGET_P99_MS:
        out.append("p99")
    if o["errors"]:
        out.append("errors")
    return out


def cores_used(row):
    """Server CPU over the run, in cores (100% = one core busy)."""
    return row["cpu_pct"] / 100 if row.get("cpu_pct") else None


def report(args, info, ours, bt, rss, scaling):
    lines = []
    w = lines.append
    w(f"### Ours vs BioThings 1.2.2, one process on one core ({info['date']})")
    w("")
    w(f"- machine: {info['machine']['nproc']} cores, {info['machine']['cpu']}, Linux {info['machine']['kernel']}")
    w(f"- ours: {', '.join(f'{k} {v}' for k, v in info['ours'].items())}")
    w(f"- BioThings: {', '.join(f'{k} {v}' for k, v in info['bt'].items())}")
    w(f"- load: wrk -t{args.threads} -c{args.conns} -d{args.duration} (warm-up {args.warmup}), "
      f"{args.rounds} rounds interleaved ours/BioThings, medians; servers pinned to CPU {args.server_cpu}, "
      f"ES stub and wrk to CPU {args.aux_cpu}")
    w(f"- command: `{info['command']}`")
    w("")
    w("| case | request | answer bytes ours/BT | ours req/s | BT req/s | ratio (>= 3) | ours p50 / p99 ms "
      "| BT p50 / p99 ms | ours CPU ms/req | BT CPU ms/req | CPU ratio (<= 0.33) | errors ours/BT "
      "| neighbours CPU% ours/BT | target |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in CASES:
        if case not in ours or case not in bt:
            continue
        o, b = ours[case], bt[case]
        ratio = o["rps"] / b["rps"] if b["rps"] else None
        cratio = o["cpu_ms"] / b["cpu_ms"] if o["cpu_ms"] and b["cpu_ms"] else None
        ok = (ratio is not None and ratio >= TARGET_RPS_RATIO and cratio is not None
              and cratio <= TARGET_CPU_RATIO and o["p99_ms"] < TARGET_P99_MS and o["errors"] == 0)
        w(f"| {case} | {o['request']} | {o['bytes']}/{b['bytes']} "
          f"| {o['rps']:.0f} ({o['rps_min']:.0f}-{o['rps_max']:.0f}) "
          f"| {b['rps']:.0f} ({b['rps_min']:.0f}-{b['rps_max']:.0f}) | {fmt(ratio, '.2f')} "
          f"| {o['p50_ms']:.1f} / {o['p99_ms']:.1f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} "
          f"| {fmt(o['cpu_ms'], '.3f')} | {fmt(b['cpu_ms'], '.3f')} | {fmt(cratio, '.2f')} "
          f"| {o['errors']}/{b['errors']} | {fmt(o['foreign_pct'])}/{fmt(b['foreign_pct'])} "
          f"| {'met' if ok else 'missed: ' + ', '.join(misses(ratio, cratio, o))} |")
    w("")
    if rss:
        w("#### Resident memory after each round (MB, VmRSS)")
        w("")
        w("| after round | ours | BioThings |")
        w("|---:|---:|---:|")
        for i, (o, b) in enumerate(rss, 1):
            w(f"| {i} | {o:.1f} | {b:.1f} |")
        w("")
    if scaling:
        one, two, rss2 = scaling
        w(f"#### Scaling: ours, `--processes 1` (CPU {args.server_cpu}) vs `--processes 2` (CPUs 0,1)")
        w("")
        w("| case | 1 process req/s | 2 processes req/s | speed-up | server cores used 1 / 2 "
          "| req/s per server core 1 / 2 | per-core efficiency | 1 proc p99 ms | 2 procs p99 ms "
          "| CPU ms/req 1 / 2 |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for case in one:
            a, c = one[case], two.get(case)
            if c is None:
                continue
            cores = [cores_used(a), cores_used(c)]
            per_core = [row["rps"] / used if used else None for row, used in zip((a, c), cores)]
            efficiency = per_core[1] / per_core[0] if None not in per_core else None
            w(f"| {case} | {a['rps']:.0f} | {c['rps']:.0f} | {c['rps'] / a['rps']:.2f}x "
              f"| {fmt(cores[0], '.2f')} / {fmt(cores[1], '.2f')} "
              f"| {fmt(per_core[0])} / {fmt(per_core[1])} | {fmt(efficiency, '.2f')} | {a['p99_ms']:.1f} "
              f"| {c['p99_ms']:.1f} | {fmt(a['cpu_ms'], '.3f')} / {fmt(c['cpu_ms'], '.3f')} |")
        w("")
        w("With 2 processes the workers share the two cores with wrk and the ES stub (this machine has "
          f"{info['machine']['nproc']} cores), so they get less than 2 cores (server cores used) and the "
          "speed-up is bounded by that; the 1-process server has a core of its own. Scaling is read per core the "
          "servers used: req/s per server core with 2 processes over that with 1 (1.00 = linear).")
        if rss2:
            w("")
            w("RSS of the 2 workers after each round (MB): "
              + "; ".join(" + ".join(f"{v:.1f}" for v in r) for r in rss2))
        w("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--warmup", default="3s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--cases", default=" ".join(CASES))
    ap.add_argument("--server-cpu", default="0", help="taskset CPU list for the servers under test")
    ap.add_argument("--aux-cpu", default="1", help="taskset CPU list for the ES stub and wrk")
    ap.add_argument("--bench-dir", default=default_bench_dir(), help="dir with es_stub.py and run_bench.sh")
    ap.add_argument("--bt-venv", default="/tmp/venv-bt122")
    ap.add_argument("--bt-spec", default="biothings==1.2.2")
    ap.add_argument("--python", default=sys.executable, help="interpreter for our server")
    ap.add_argument("--quiet-wait", type=int, default=60, help="wait up to N s for neighbours before each case")
    ap.add_argument("--quiet-max-pct", type=int, default=15)
    ap.add_argument("--scaling-cases", default="annotation query query_fields query_post metadata",
                    help="cases of the 1 vs 2 processes comparison ('' to skip); 2 processes is the "
                         "default --processes on a 2-core machine, so its p99 is the default serving's")
    ap.add_argument("--skip-biothings", action="store_true", help="only our server (quick profiling runs)")
    ap.add_argument("--out", default=None, help="results dir [benchmarks/results/<timestamp>]")
    ap.add_argument("--rerender", metavar="DIR", help="print the report of a finished run (its summary.json)")
    args = ap.parse_args()
    if args.rerender:
        with open(os.path.join(args.rerender, "summary.json")) as f:
            saved = json.load(f)
        for key, value in saved.get("args", {}).items():
            setattr(args, key, value)
        print(report(args, saved["info"], saved["ours"], saved["biothings"] or {}, saved["rss"], saved["scaling"]))
        return
    if not args.bench_dir:
        ap.error("--bench-dir: no run_bench.sh found (set BENCH_DIR)")
    if not shutil.which("wrk"):
        ap.error("wrk not found (apt-get install -y wrk)")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or os.path.join(HERE, "results", stamp))
    os.makedirs(out, exist_ok=True)
    cases = args.cases.split()

    procs = []
    try:
        stub, env = start_stub(args, out, procs)
        ours, ours_url = start_server(args, "ours", 1, args.server_cpu, env, out, procs)
        bt = bt_url = None
        if not args.skip_biothings:
            bt_python = ensure_bt_venv(args.bt_venv, args.bt_spec)
            bt_port = free_port()
            bt = Proc("biothings", [bt_python, "-m", "biothings.web", f"--dir={HERE}", "--conf=bench_config",
                                    f"--port={bt_port}", "--address=127.0.0.1"], args.server_cpu, HERE, env, out)
            procs.append(bt)
            bt_url = f"http://127.0.0.1:{bt_port}"
            wait_http(f"{bt_url}/v1/metadata", bt)

        info = {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
            "ours": versions(args.python, ["tornado", "elasticsearch", "orjson", "uvloop"]),
            "bt": versions(bt_python, ["biothings", "tornado", "elasticsearch"]) if bt else {},
            "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        }
        runs_ours, runs_bt, rss = [], [], []
        for r in range(1, args.rounds + 1):
            runs_ours.append(run_matrix(args, ours_url, ours.pid, stub.pid, os.path.join(out, f"ours_r{r}"),
                                        cases, f"ours round {r}"))
            if bt:
                runs_bt.append(run_matrix(args, bt_url, bt.pid, stub.pid, os.path.join(out, f"biothings_r{r}"),
                                          cases, f"BioThings 1.2.2 round {r}"))
            rss.append((sum(rss_mb(ours.pid).values()), sum(rss_mb(bt.pid).values()) if bt else 0.0))
            log(f"RSS after round {r}: ours {rss[-1][0]:.1f} MB, BioThings {rss[-1][1]:.1f} MB")
        ours_sum = summarize(runs_ours)
        bt_sum = summarize(runs_bt) if bt else {c: {**v, "rps": 0, "cpu_ms": None} for c, v in ours_sum.items()}
        if bt:
            bt.stop()

        scaling = None
        scases = args.scaling_cases.split()
        if scases:
            two, two_url = start_server(args, "ours_2proc", 2, "0,1", env, out, procs)
            one_runs, two_runs, rss2 = [], [], []
            for r in range(1, args.rounds + 1):
                one_runs.append(run_matrix(args, ours_url, ours.pid, stub.pid,
                                           os.path.join(out, f"scale1_r{r}"), scases, f"ours 1 process round {r}"))
                two_runs.append(run_matrix(args, two_url, two.pid, stub.pid,
                                           os.path.join(out, f"scale2_r{r}"), scases, f"ours 2 processes round {r}"))
                rss2.append([v for p, v in sorted(rss_mb(two.pid).items()) if p != two.pid])
            scaling = (summarize(one_runs), summarize(two_runs), rss2)
            two.stop()

        text = report(args, info, ours_sum, bt_sum, rss, scaling)
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump({"args": vars(args), "info": info, "ours": ours_sum, "biothings": bt_sum if bt else None, "rss": rss,
                       "scaling": scaling}, f, indent=1)
        print(text)
        log(f"report -> {os.path.join(out, 'report.md')}")
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
