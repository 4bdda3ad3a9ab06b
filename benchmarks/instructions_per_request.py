"""Instructions per request (callgrind): a measure of server cost that a busy machine does not move.

    python benchmarks/instructions_per_request.py [--servers ours,fastapi,biothings,responder]
        [--baseline-root /tmp/old] [--cases annotation,query,...] [--requests 400] [--concurrency 8]

wrk's requests per second and the CPU time per request move with whatever else the
machine runs (two cores shared with test suites: 2x between two runs of the same
server). The instructions a server executes per request do not: each server of
``--servers`` runs under ``valgrind --tool=callgrind`` (about 50x slower), gets
``--warmup`` requests of a case, its counters are zeroed (``callgrind_control -z``), it
gets ``--requests`` more from ``--concurrency`` keep-alive connections, and the
counters are dumped and divided by the requests. The Elasticsearch stub and the
client run natively. Instructions are not time (a syscall or a cache miss costs more
than an add), so read them for A/B comparisons of builds and for the share of a cost,
and the wrk table of ``bench_vs_biothings.py`` on a quiet machine for the time.

Servers: ``ours`` (this checkout), ``baseline`` (``--baseline-root``, an older
checkout), ``fastapi`` (``reference/fastapi_app.py`` from ``--reference-venv``),
``biothings`` (1.2.2 from ``--bt-venv``), ``responder`` (``reference/null_responder.py``:
the floor), all with ``bench_config.py`` against the same stub; and ``embedded``: ours
on the embedded engine, the 77,000-gene index of ``genes77k.py`` in ``--data-dir`` (built
when absent), the cases' requests unchanged (``GET /v1/query?q=cdk2`` finds 40 genes there).
"""

import argparse
import glob
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_vs_biothings import CASE_REQUESTS, REFERENCE_DIR, default_bench_dir, free_port  # noqa: E402

POST_BODY = "q=" + ",".join(str(i) for i in range(1017, 1037)) + "&scopes=_id"  # run_bench.sh's query_post
VALGRIND = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--trace-children=no"]


def log(*args):
    print("[instructions]", *args, file=sys.stderr, flush=True)


def wait_http(url, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            host, port = url.split("//")[1].split("/")[0].split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request("GET", "/" + url.split("//")[1].split("/", 1)[1])
            if connection.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def send(port, case, count, concurrency):
    """``count`` requests of ``case`` over ``concurrency`` keep-alive connections; statuses seen."""
    method, target = CASE_REQUESTS[case]
    body = POST_BODY if method == "POST" else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    statuses = set()
    lock = threading.Lock()
    left = [count]

    def worker():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            # the requests of wrk: no Accept-Encoding (http.client adds "identity" by default)
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body.encode() if body is not None else None)
            response = connection.getresponse()
            response.read()
            statuses.add(response.status)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def total_instructions(dump):
    with open(dump) as handle:
        for line in handle:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def server_argv(args, name, port, answers):
    if name in ("ours", "baseline"):
        root = ROOT if name == "ours" else os.path.abspath(args.baseline_root)
        python = args.python if name == "ours" else (args.baseline_python or args.python)
        return [python, os.path.join(root, "index.py"), f"--conf={os.path.join(HERE, 'bench_config.py')}",
                f"--port={port}", "--address=127.0.0.1", "--processes=1"], root
    if name == "embedded":  # ours on the 77,000-gene index of genes77k.py (--data-dir)
        return [args.python, os.path.join(ROOT, "index.py"), f"--conf={os.path.join(HERE, 'embedded_config.py')}",
                f"--port={port}", "--address=127.0.0.1", "--processes=1"], ROOT
    if name == "fastapi":
        python = os.path.join(args.reference_venv, "bin", "python")
        return [python, "-m", "uvicorn", "fastapi_app:app", "--app-dir", REFERENCE_DIR, "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log"], REFERENCE_DIR
    if name == "biothings":
        python = os.path.join(args.bt_venv, "bin", "python")
        return [python, "-m", "biothings.web", f"--dir={HERE}", "--conf=bench_config", f"--port={port}",
                "--address=127.0.0.1"], HERE
    if name == "responder":
        return [args.python, os.path.join(REFERENCE_DIR, "null_responder.py"), "--port", str(port),
                "--answers", answers], HERE
    raise SystemExit(f"unknown server {name}")


def measure_server(args, name, env, work, answers):
    port = free_port()
    argv, cwd = server_argv(args, name, port, answers)
    out_pattern = os.path.join(work, f"callgrind.{name}.%p")
    log(f"{name}: starting under callgrind")
    proc = subprocess.Popen(VALGRIND + [f"--callgrind-out-file={out_pattern}"] + argv, cwd=cwd, env=env,
                            stdout=open(os.path.join(work, f"{name}.log"), "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    results = {}
    try:
        probe = next(target for case, (method, target) in CASE_REQUESTS.items() if method == "GET")
        wait_http(f"http://127.0.0.1:{port}{probe}", proc, args.start_timeout)
        for case in args.cases:
            statuses = send(port, case, args.warmup, args.concurrency)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            started = time.time()
            statuses |= send(port, case, args.requests, args.concurrency)
            elapsed = time.time() - started
            before = set(glob.glob(out_pattern.replace("%p", str(proc.pid)) + "*"))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
            dumps = sorted(set(glob.glob(out_pattern.replace("%p", str(proc.pid)) + "*")) - before,
                           key=os.path.getmtime)
            instructions = total_instructions(dumps[-1])
            results[case] = {"instructions_per_request": instructions / args.requests,
                             "statuses": sorted(statuses), "seconds": round(elapsed, 1)}
            log(f"{name} {case}: {instructions / args.requests / 1e6:.3f} M instructions per request "
                f"(statuses {sorted(statuses)})")
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return results


def capture_answers(args, env, work):
    """The answers ours gives to the cases (the responder answers them byte for byte)."""
    port = free_port()
    argv, cwd = server_argv(args, "ours", port, None)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    table = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/metadata", proc, 60)
        for case, (method, target) in CASE_REQUESTS.items():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            body = POST_BODY if method == "POST" else None
            connection.request(method, target, body=body,
                               headers={"Content-Type": "application/x-www-form-urlencoded"} if body else {})
            path = os.path.join(work, f"{case}.response")
            with open(path, "wb") as handle:
                handle.write(connection.getresponse().read())
            table[f"{method} {target}"] = path
    finally:
        proc.terminate()
        proc.wait()
    answers = os.path.join(work, "answers.json")
    with open(answers, "w") as handle:
        json.dump(table, handle)
    return answers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="ours,fastapi,biothings,responder")
    parser.add_argument("--cases", default=",".join(CASE_REQUESTS))
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--baseline-root")
    parser.add_argument("--baseline-python")
    parser.add_argument("--reference-venv", default="/tmp/venv-fastapi")
    parser.add_argument("--bt-venv", default="/tmp/venv-bt122")
    parser.add_argument("--bench-dir", default=default_bench_dir())
    parser.add_argument("--start-timeout", type=int, default=600)
    parser.add_argument("--data-dir", default="/tmp/bench-genes77k", help="the embedded server's index")
    parser.add_argument("--out", help="JSON results file")
    args = parser.parse_args()
    args.cases = args.cases.split(",")
    work = tempfile.mkdtemp(prefix="instructions-")
    stub_port = free_port()
    stub = subprocess.Popen([sys.executable, os.path.join(args.bench_dir, "es_stub.py"), "--port", str(stub_port),
                             "--index", "mygene_test"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "BIOTHINGS_"))}
    env.update(BENCH_ES_HOST=f"http://127.0.0.1:{stub_port}", PYTHONUNBUFFERED="1",
               BENCH_DATA_DIR=os.path.abspath(args.data_dir))
    if "embedded" in args.servers.split(","):
        import genes77k
        genes77k.build(args.data_dir)
    results = {}
    try:
        time.sleep(1)
        answers = capture_answers(args, env, work)
        for name in args.servers.split(","):
            results[name] = measure_server(args, name, env, work, answers)
    finally:
        stub.terminate()
        stub.wait()
    names = list(results)
    print(f"Instructions per request (millions; callgrind, {args.requests} requests after {args.warmup}, "
          f"{args.concurrency} connections)\n")
    print("| case | " + " | ".join(names) + " |" + "".join(f" ours / {n} |" for n in names if n != "ours"))
    print("|---|" + "---:|" * len(names) + "---:|" * len([n for n in names if n != "ours"]))
    for case in args.cases:
        cells = [f"{results[n][case]['instructions_per_request'] / 1e6:.3f}" for n in names]
        ratios = []
        for n in names:
            if n != "ours" and "ours" in results:
                ratios.append(f"{results['ours'][case]['instructions_per_request'] / results[n][case]['instructions_per_request']:.2f}")
        print(f"| {case} | " + " | ".join(cells) + " |" + "".join(f" {r} |" for r in ratios))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=1)
    bad = {n: {c: r["statuses"] for c, r in cases.items() if r["statuses"] != [200]} for n, cases in results.items()}
    bad = {n: c for n, c in bad.items() if c}
    if bad:
        print(f"\nWARNING: answers other than 200: {bad}", file=sys.stderr)


if __name__ == "__main__":
    main()
