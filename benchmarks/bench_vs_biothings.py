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
6. the second reference: ``benchmarks/reference/fastapi_app.py`` (FastAPI on uvicorn with
   uvloop and httptools, the async Elasticsearch 8 client, orjson), installed from
   ``benchmarks/reference/requirements.txt`` into ``--reference-venv`` (default
   ``/tmp/venv-fastapi``) when absent, pinned to the server core and run in the same
   interleaved rounds (``--skip-reference`` leaves it out);
7. with ``--baseline-root DIR`` (a checkout of an older commit, e.g. made with
   ``git worktree add /tmp/old e8fa8e2``), that tree's server too, in the same rounds,
   run by ``--baseline-python`` (default: this interpreter): the before/after table;
8. the floor, after the rounds: the stub alone (wrk straight at it, the Elasticsearch
   requests of the cases) and ``benchmarks/reference/null_responder.py`` (a do-nothing
   uvloop + httptools server answering each case's bytes, captured from ours) on the
   server core; our CPU per request as a multiple of the responder's (``--skip-floor``);
9. scaling: our server with ``--processes 1`` (one core) vs ``--processes 2`` (both cores),
   interleaved, on the cases of ``--scaling-cases``;
10. prints a markdown report (medians over rounds; ratios ours/BioThings, ours/FastAPI per
   core; targets) and writes it, with every raw wrk output, under ``--out``.

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
REFERENCE_DIR = os.path.join(HERE, "reference")
CASES = ["annotation", "query", "query_fields", "query_post", "metadata"]
# each case's request as run_bench.sh sends it (method, target), for the do-nothing responder
CASE_REQUESTS = {
    "annotation": ("GET", "/v1/gene/1017"),
    "query": ("GET", "/v1/query?q=cdk2"),
    "query_fields": ("GET", "/v1/query?q=cdk2&fields=symbol,name&size=10"),
    "query_post": ("POST", "/v1/query"),
    "metadata": ("GET", "/v1/metadata"),
}
# the Elasticsearch requests behind the cases (run_bench.sh's es_* cases), for the stub alone
STUB_CASES = {"annotation": "es_search_post", "query": "es_search_post", "query_fields": "es_search_post",
              "query_post": "es_msearch", "metadata": "es_index"}
TARGET_REFERENCE_RATIO = 3.0
MAX_BASELINE_LOSS = 0.05
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


def thread_cpu_seconds(pid):
    """utime + stime of every thread of ``pid`` and of its children."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                                                 text=True).stdout.split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


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


def start_server(args, name, processes, cpus, env, out, procs, root=ROOT, python=None):
    """Our server (``index.py`` with ``bench_config.py``) of the checkout ``root`` on ``cpus``,
    answering: (Proc, base url)."""
    port = free_port()
    p = Proc(name, [python or args.python, os.path.join(root, "index.py"),
                    f"--conf={os.path.join(HERE, 'bench_config.py')}", f"--port={port}",
                    "--address=127.0.0.1", f"--processes={processes}"], cpus, root, env, out)
    procs.append(p)
    wait_http(f"http://127.0.0.1:{port}/v1/metadata", p)
    return p, f"http://127.0.0.1:{port}"


def ensure_reference_venv(venv, requirements):
    """The reference app's venv (``requirements.txt`` installed once): its python."""
    python = os.path.join(venv, "bin", "python")
    check = [python, "-c", "import fastapi, uvicorn, uvloop, httptools, elasticsearch, orjson, multipart"]
    if os.path.exists(python) and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    log(f"creating {venv} from {requirements}")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", requirements], check=True)
    return python


def start_reference(args, python, env, out, procs):
    """The FastAPI reference app on the server core, answering: (Proc, base url)."""
    port = free_port()
    p = Proc("fastapi", [python, "-m", "uvicorn", "fastapi_app:app", "--app-dir", REFERENCE_DIR,
                         "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                         "--no-access-log", "--workers", "1"], args.server_cpu, REFERENCE_DIR, env, out)
    procs.append(p)
    wait_http(f"http://127.0.0.1:{port}/v1/metadata", p)
    return p, f"http://127.0.0.1:{port}"


def start_responder(args, answers_dir, cases, out, procs):
    """The do-nothing responder on the server core, answering each case with the bytes ours
    answered it (``answers_dir/<case>.response``, as ``run_bench.sh`` saves them)."""
    table = {}
    for case in cases:
        method, target = CASE_REQUESTS[case]
        table[f"{method} {target}"] = os.path.join(answers_dir, f"{case}.response")
    path = os.path.join(out, "responder-answers.json")
    with open(path, "w") as f:
        json.dump(table, f, indent=1)
    port = free_port()
    p = Proc("responder", [args.python, os.path.join(REFERENCE_DIR, "null_responder.py"), "--port", str(port),
                           "--answers", path], args.server_cpu, out, dict(os.environ), out)
    procs.append(p)
    probe = next(target for case, (method, target) in CASE_REQUESTS.items() if method == "GET" and case in cases)
    wait_http(f"http://127.0.0.1:{port}{probe}", p)
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


def baseline_label(root):
    """The commit a baseline checkout is at (``git -C root rev-parse --short HEAD``), or its path."""
    out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"commit `{out.stdout.strip()}`" if out.returncode == 0 else root


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


def per_core(row):
    """req/s per core the server used."""
    used = cores_used(row) if row else None
    return row["rps"] / used if used else None


def report_reference(w, ours, ref, info):
    w(f"#### Ours vs the FastAPI reference (FastAPI {info.get('fastapi', {}).get('fastapi', '?')}, "
      f"uvicorn {info.get('fastapi', {}).get('uvicorn', '?')}), one process on one core, same rounds")
    w("")
    w("| case | answer bytes ours/FastAPI | ours req/s | FastAPI req/s | ours req/s per core | FastAPI req/s per core "
      "| ratio per core (>= 3) | ours CPU ms/req | FastAPI CPU ms/req | FastAPI p50 / p99 ms | errors ours/FastAPI "
      "| target |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in CASES:
        if case not in ours or case not in ref:
            continue
        o, f = ours[case], ref[case]
        po, pf = per_core(o), per_core(f)
        ratio = po / pf if po and pf else None
        ok = ratio is not None and ratio >= TARGET_REFERENCE_RATIO and not o["errors"] and not f["errors"]
        w(f"| {case} | {o['bytes']}/{f['bytes']} | {o['rps']:.0f} | {f['rps']:.0f} ({f['rps_min']:.0f}-{f['rps_max']:.0f}) "
          f"| {fmt(po)} | {fmt(pf)} | {fmt(ratio, '.2f')} | {fmt(o['cpu_ms'], '.3f')} | {fmt(f['cpu_ms'], '.3f')} "
          f"| {f['p50_ms']:.1f} / {f['p99_ms']:.1f} | {o['errors']}/{f['errors']} | {'met' if ok else 'missed'} |")
    w("")


def report_floor(w, ours, floor):
    responder, stub = floor
    w("#### The floor: a do-nothing uvloop + httptools responder on the server core, and the stub alone")
    w("")
    w("| case | responder req/s | responder CPU ms/req | ours CPU ms/req | ours / floor | stub alone: request "
      "| stub req/s | stub CPU ms/req |")
    w("|---|---:|---:|---:|---:|---|---:|---:|")
    for case in CASES:
        r, o = responder.get(case), ours.get(case)
        if r is None or o is None:
            continue
        s = stub.get(STUB_CASES[case])
        multiple = o["cpu_ms"] / r["cpu_ms"] if o.get("cpu_ms") and r.get("cpu_ms") else None
        w(f"| {case} | {r['rps']:.0f} | {fmt(r['cpu_ms'], '.3f')} | {fmt(o['cpu_ms'], '.3f')} | {fmt(multiple, '.1f')}x "
          f"| {s['request'] if s else ''} | {fmt(s['rps']) if s else ''} | {fmt(s['cpu_ms'], '.3f') if s else ''} |")
    w("")


def report_baseline(w, ours, before, label):
    w(f"#### Before/after: {label} (before) vs this checkout (after), same rounds")
    w("")
    w("| case | before req/s | after req/s | after/before req/s | before CPU ms/req | after CPU ms/req "
      "| after/before CPU | before p99 ms | after p99 ms | within 5% |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in CASES:
        if case not in ours or case not in before:
            continue
        a, b = ours[case], before[case]
        rps = a["rps"] / b["rps"] if b["rps"] else None
        cpu = a["cpu_ms"] / b["cpu_ms"] if a.get("cpu_ms") and b.get("cpu_ms") else None
        ok = rps is not None and rps >= 1 - MAX_BASELINE_LOSS and (cpu is None or cpu <= 1 + MAX_BASELINE_LOSS)
        w(f"| {case} | {b['rps']:.0f} ({b['rps_min']:.0f}-{b['rps_max']:.0f}) "
          f"| {a['rps']:.0f} ({a['rps_min']:.0f}-{a['rps_max']:.0f}) | {fmt(rps, '.3f')} "
          f"| {fmt(b['cpu_ms'], '.3f')} | {fmt(a['cpu_ms'], '.3f')} | {fmt(cpu, '.3f')} | {b['p99_ms']:.1f} "
          f"| {a['p99_ms']:.1f} | {'yes' if ok else 'NO'} |")
    w("")


def report(args, info, ours, bt, rss, scaling, extra=None):
    extra = extra or {}
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
    if extra.get("fastapi"):
        report_reference(w, ours, extra["fastapi"], info)
    if extra.get("baseline"):
        report_baseline(w, ours, extra["baseline"], extra.get("baseline_label", "baseline"))
    if extra.get("floor"):
        report_floor(w, ours, extra["floor"])
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
    ap.add_argument("--skip-reference", action="store_true", help="leave out the FastAPI reference app")
    ap.add_argument("--reference-venv", default="/tmp/venv-fastapi")
    ap.add_argument("--reference-requirements", default=os.path.join(REFERENCE_DIR, "requirements.txt"))
    ap.add_argument("--baseline-root", help="checkout of an older commit: its server in the same rounds")
    ap.add_argument("--baseline-python", default=None, help="interpreter of the baseline [this one]")
    ap.add_argument("--skip-floor", action="store_true", help="leave out the responder and stub-alone runs")
    ap.add_argument("--out", default=None, help="results dir [benchmarks/results/<timestamp>]")
    ap.add_argument("--rerender", metavar="DIR", help="print the report of a finished run (its summary.json)")
    args = ap.parse_args()
    if args.rerender:
        with open(os.path.join(args.rerender, "summary.json")) as f:
            saved = json.load(f)
        for key, value in saved.get("args", {}).items():
            setattr(args, key, value)
        print(report(args, saved["info"], saved["ours"], saved["biothings"] or {}, saved["rss"], saved["scaling"],
                     saved.get("extra")))
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

        servers = [("ours", ours, ours_url)]
        if bt:
            servers.append(("biothings", bt, bt_url))
        ref_python = None
        if not args.skip_reference:
            ref_python = ensure_reference_venv(args.reference_venv, args.reference_requirements)
            ref, ref_url = start_reference(args, ref_python, env, out, procs)
            servers.append(("fastapi", ref, ref_url))
        if args.baseline_root:
            base, base_url = start_server(args, "baseline", 1, args.server_cpu, env, out, procs,
                                          root=os.path.abspath(args.baseline_root), python=args.baseline_python)
            servers.append(("baseline", base, base_url))

        info = {
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
            "ours": versions(args.python, ["tornado", "elasticsearch", "orjson", "uvloop"]),
            "bt": versions(bt_python, ["biothings", "tornado", "elasticsearch"]) if bt else {},
            "fastapi": versions(ref_python, ["fastapi", "uvicorn", "elasticsearch", "orjson", "uvloop"])
            if ref_python else {},
            "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        }
        runs = {label: [] for label, _proc, _url in servers}
        rss = []
        for r in range(1, args.rounds + 1):
            for label, proc, url in servers:
                runs[label].append(run_matrix(args, url, proc.pid, stub.pid, os.path.join(out, f"{label}_r{r}"),
                                              cases, f"{label} round {r}"))
            rss.append((sum(rss_mb(ours.pid).values()), sum(rss_mb(bt.pid).values()) if bt else 0.0))
            log(f"RSS after round {r}: ours {rss[-1][0]:.1f} MB, BioThings {rss[-1][1]:.1f} MB")
        ours_sum = summarize(runs["ours"])
        bt_sum = summarize(runs["biothings"]) if bt else {c: {**v, "rps": 0, "cpu_ms": None}
                                                           for c, v in ours_sum.items()}
        extra = {}
        if "fastapi" in runs:
            extra["fastapi"] = summarize(runs["fastapi"])
        if "baseline" in runs:
            extra["baseline"] = summarize(runs["baseline"])
            extra["baseline_label"] = baseline_label(args.baseline_root)
        for label, proc, _url in servers[1:]:
            proc.stop()

        if not args.skip_floor:
            responder, responder_url = start_responder(args, os.path.join(out, "ours_r1"), cases, out, procs)
            stub_url = env["BENCH_ES_HOST"]
            stub_cases = sorted({STUB_CASES[case] for case in cases})
            floor_runs, stub_runs = [], []
            for r in range(1, args.rounds + 1):
                floor_runs.append(run_matrix(args, responder_url, responder.pid, stub.pid,
                                             os.path.join(out, f"responder_r{r}"), cases, f"responder round {r}"))
                stub_runs.append(run_matrix(args, stub_url, stub.pid, stub.pid, os.path.join(out, f"stub_r{r}"),
                                            stub_cases, f"stub alone round {r}"))
            responder.stop()
            extra["floor"] = (summarize(floor_runs), summarize(stub_runs))

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

        text = report(args, info, ours_sum, bt_sum, rss, scaling, extra)
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump({"args": vars(args), "info": info, "ours": ours_sum, "biothings": bt_sum if bt else None, "rss": rss,
                       "scaling": scaling, "extra": extra}, f, indent=1)
        print(text)
        log(f"report -> {os.path.join(out, 'report.md')}")
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
