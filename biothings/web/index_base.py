"""Command line entry point: ``python index.py --conf=config --port=8000``.

Mistakes on the command line or in the config end the start with one line on
stderr (usage and exit code 2 for the command line, exit code 1 for the config),
never a traceback, unless ``--debug``.
"""

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys

import tornado.netutil
import tornado.process

logger = logging.getLogger("biothings.web")

_TRUE = ("1", "true", "yes", "y", "t", "on")
_FALSE = ("0", "false", "no", "n", "f", "off")


def _switch(text):
    """``--debug``, ``--debug=true`` or ``--debug=0`` (tornado's spellings keep working)."""
    word = str(text).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def make_parser():
    """The command line of ``index.py``: our options, each with one line and its default."""
    parser = argparse.ArgumentParser(
        prog=os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "index.py",
        description="Serve a BioThings API (settings from the config module, see docs/configuration.md).",
        epilog="example: python index.py --conf=config --port=8000 --processes=2",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--conf", default="config", metavar="MODULE", help="config module: a dotted name or a .py file")
    add("--port", type=int, default=8000, help="port to listen on")
    add("--address", default="0.0.0.0", help="address to bind")
    add("--processes", type=int, default=0, metavar="N", help="worker processes sharing the port; 0: one per core")
    add("--http", choices=("biothings", "tornado"), default=argparse.SUPPRESS,
        help="HTTP server (default: the HTTP_SERVER setting)")
    add("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
        help="event loop; auto: uvloop when installed")
    add("--dir", default=os.getcwd(), help="working directory (where the config module is looked for)")
    add("--debug", type=_switch, nargs="?", const=True, default=False, metavar="BOOL",
        help="one process, tracebacks in logs and on start-up errors")
    add("--autoreload", type=_switch, nargs="?", const=True, default=False, metavar="BOOL",
        help="restart when a source file changes (one process)")
    add("--shutdown_timeout", "--shutdown-timeout", type=float, default=10.0, metavar="SECONDS",
        help="seconds in-flight requests get to finish on SIGTERM")
    add("--gc_threshold", "--gc-threshold", type=int, default=10000, metavar="N",
        help="allocations between two young-generation garbage collections (Python's: 700); 0: Python's")
    add("--switch_interval", "--switch-interval", type=float, default=0.0005, metavar="SECONDS",
        help="longest a thread keeps the GIL while another waits (Python's: 0.005); shorter: the event "
             "loop waits less behind threads shaping large answers; 0: Python's")
    add("--logging", default=None, metavar="LEVEL", help=argparse.SUPPRESS)  # tornado's spelling of LOGGING_LEVEL
    return parser


def main(app_settings=None, use_curl=False, argv=None):
    """Serve the API: parse the command line, load the config, fork, run.

    ``app_settings``: extra tornado application settings; ``use_curl``: use
    tornado's libcurl HTTP client for outgoing requests.
    """
    args = make_parser().parse_args(argv)
    started_in = os.getcwd()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        level=(args.logging or "INFO").upper() if not str(args.logging).isdigit() else int(args.logging))
    try:
        os.chdir(args.dir)
    except OSError as exc:
        raise SystemExit(f"error: --dir={args.dir}: {exc.strerror}") from None
    if args.dir not in sys.path:
        sys.path.insert(0, args.dir)
    if use_curl:
        from tornado.httpclient import AsyncHTTPClient
        AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")

    from biothings.web.application import prepare_embedded_data
    from biothings.web.settings import BiothingWebSettings, SettingsError

    try:
        web_settings = BiothingWebSettings(args.conf)
    except SettingsError as exc:  # a config mistake: one line, no traceback
        if args.debug:
            raise
        raise SystemExit(f"error: {exc}") from None
    web_settings.configure_logger(logging.getLogger("biothings"))
    from biothings.web import accesslog
    accesslog.configure(web_settings)
    prepare_embedded_data(web_settings)
    check_clusters(web_settings, args.debug)

    inherited = inherited_sockets()
    if inherited:  # started again in place (restart_in_place): already a worker, already listening
        sockets = inherited
    else:
        sockets = listen_and_fork(web_settings, args)

    settings = dict(app_settings or {})
    if args.debug:
        settings["debug"] = True
    if args.autoreload:
        settings["autoreload"] = True
    kept = run(serve(web_settings, sockets, settings, args), args.loop)
    if kept:
        os.chdir(started_in)
        restart_in_place(kept)


def listen_and_fork(web_settings, args):
    """Bind the listening sockets and fork the workers (if more than one); the sockets of this worker."""
    processes = args.processes
    if args.debug or args.autoreload:
        processes = 1
    # Several workers: each binds its own SO_REUSEPORT socket, so the kernel
    # spreads connections over them. On one shared socket, whichever worker
    # wakes first accepts a whole burst of keep-alive connections (wrk -c32:
    # often all 32 on one worker, the other idle).
    reuse_port = processes != 1 and bool(args.port) and hasattr(socket, "SO_REUSEPORT")
    try:
        sockets = tornado.netutil.bind_sockets(args.port, args.address, reuse_port=reuse_port)
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {args.address}:{args.port}: {exc.strerror}") from None
    if processes != 1:
        if web_settings.get("METRICS_PATH"):
            from biothings.web.metrics import prepare_multiprocess
            prepare_multiprocess()  # /metrics of any worker sums every worker
        if reuse_port:
            for sock in sockets:  # the bind above only checked the port is free
                sock.close()
            sockets = []
        supervise_workers(processes or tornado.process.cpu_count(), sockets)
        if reuse_port:
            sockets = tornado.netutil.bind_sockets(args.port, args.address, reuse_port=True)
    return sockets


LISTEN_FDS_ENV = "BIOTHINGS_LISTEN_FDS"


def restart_in_place(descriptors):
    """Execute this program again in this process: same process id (the supervisor and
    the metrics see the same worker), the listening sockets ``descriptors`` kept open
    (connections arriving meanwhile wait in their backlog) and named in the environment."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ, **{LISTEN_FDS_ENV: ",".join(str(fd) for fd in descriptors)})
    os.execve(sys.executable, sys.orig_argv, env)


def inherited_sockets():
    """The listening sockets of the process this one replaced (restart_in_place), or []."""
    named = os.environ.pop(LISTEN_FDS_ENV, "")
    sockets = []
    for fd in filter(None, named.split(",")):
        sock = socket.socket(fileno=int(fd))
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def check_clusters(web_settings, debug=False):
    """Exit with one line if a cluster of the config cannot be served (an unsupported
    version, or its client extra not installed), before any worker starts."""
    from biothings.web import engines
    from biothings.web.engines.clusters import ClusterError
    try:
        engines.check_clusters(web_settings)
    except ClusterError as exc:
        if debug:
            raise
        raise SystemExit(f"error: {exc}") from None


def run(main_coroutine, loop="auto"):
    """Run the server on uvloop (libuv: less CPU per request) when available, else asyncio."""
    if loop not in ("auto", "uvloop", "asyncio"):
        raise SystemExit(f"--loop={loop}: expected auto, uvloop or asyncio")
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise SystemExit("--loop=uvloop: uvloop is not installed") from None
        else:
            return uvloop.run(main_coroutine)
    return asyncio.run(main_coroutine)


def supervise_workers(count, sockets=()):
    """Fork ``count`` workers sharing the listening sockets; returns in each worker.

    The parent stays behind as a supervisor: it restarts a worker that dies
    unexpectedly, forwards SIGTERM/SIGINT to all workers, waits for them to
    finish their in-flight requests, and exits 0.
    """
    children = {}
    stopping = False

    def spawn(slot):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            return True
        children[pid] = slot
        return False

    def forward(signum, frame):
        nonlocal stopping
        stopping = True
        for sock in sockets:  # new connections are refused once the workers close theirs
            sock.close()
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    logger.info("starting %d worker processes", count)
    for slot in range(count):
        if spawn(slot):
            return
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid, None)
        from biothings.web.metrics import worker_exited
        worker_exited(pid)
        if slot is None or stopping:
            continue
        logger.warning("worker %d (pid %d) exited with status %d; restarting", slot, pid, status)
        if spawn(slot):
            return
    from biothings.web.metrics import cleanup_multiprocess
    cleanup_multiprocess()
    sys.exit(0)


async def serve(web_settings, sockets, app_settings, args):
    """Run until SIGTERM/SIGINT, then finish in-flight requests and close.

    Or until the application asks to start again in place (MEMORY_RESTART_BYTES):
    then the same, but the listening sockets stay open (new descriptors, returned)."""
    app = web_settings.get_app(app_settings)
    server = make_server(app, web_settings, getattr(args, "http", None))
    await server.start(sockets)
    await app.startup()
    # the start-up heap (modules, settings, metadata) lives for good: keeping it
    # out of the collector's scans shortens GC pauses on the request path
    gc.freeze()
    tune_gc(args.gc_threshold)
    if args.switch_interval > 0:
        sys.setswitchinterval(args.switch_interval)
    logger.info("serving on %s (pid %d, %s event loop, gc threshold %d)",
                ", ".join(str(s.getsockname()) for s in sockets), os.getpid(),
                type(asyncio.get_running_loop()).__module__.split(".")[0], gc.get_threshold()[0])
    stop = asyncio.Event()
    signalled = []
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: (signalled.append(True), stop.set()))
    app.memory.watch_growth(stop.set)
    await stop.wait()
    kept = []
    if not signalled:  # the application's restart: the sockets outlive this program
        kept = [os.dup(sock.fileno()) for sock in sockets]
        for fd in kept:
            os.set_inheritable(fd, True)
    logger.info("%s (pid %d)", "starting again in place" if kept else "shutting down", os.getpid())
    await graceful_stop(server, app, args.shutdown_timeout)
    return kept


def tune_gc(threshold):
    """Collect the young generation every ``threshold`` net allocations.

    The objects of the requests in flight (parsed engine answers) come and go by
    the thousands; at Python's 700 they set off a young collection every few
    requests, each scanning and promoting that live data (3-4% of the CPU under
    load). With a threshold above that live set, a collection comes only once
    garbage piles up (measurements: docs/benchmarks.md).
    """
    if threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(threshold, middle, old)


def make_server(app, web_settings, kind=None):
    """The HTTP server of ``app`` (``kind``, or the ``HTTP_SERVER`` setting), its limits and timeouts set.

    tornado's server has one timeout for the wait between requests and the
    head that follows (``idle_connection_timeout``): it gets the shorter of
    ``HTTP_IDLE_TIMEOUT`` and ``HTTP_HEADER_TIMEOUT``, and no write timeout.
    """
    from biothings.web import httpserver
    kind = kind or web_settings.HTTP_SERVER
    limits = {"max_body_size": web_settings.MAX_BODY_SIZE, "max_header_size": web_settings.HTTP_MAX_HEADER_SIZE}
    if kind == "biothings":
        return httpserver.HTTPServer(app, header_timeout=web_settings.HTTP_HEADER_TIMEOUT,
                                     body_timeout=web_settings.HTTP_BODY_TIMEOUT,
                                     idle_timeout=web_settings.HTTP_IDLE_TIMEOUT,
                                     write_timeout=web_settings.HTTP_WRITE_TIMEOUT, **limits)
    if kind == "tornado":
        waits = [timeout for timeout in (web_settings.HTTP_IDLE_TIMEOUT, web_settings.HTTP_HEADER_TIMEOUT) if timeout]
        return httpserver.TornadoHTTPServer(app, idle_connection_timeout=min(waits) if waits else None,
                                            body_timeout=web_settings.HTTP_BODY_TIMEOUT or None, **limits)
    raise SystemExit(f"HTTP server {kind!r}: expected biothings or tornado")


async def graceful_stop(server, app, timeout):
    """Stop accepting, let in-flight requests finish (``timeout`` s at most), close.

    tornado's ``close_all_connections`` closes connections at once, in-flight
    requests included: wait for the application's requests first, then close
    the connections left (idle keep-alive ones), then the engine clients.
    """
    server.stop()  # closes the listening sockets: new connections are refused
    if not await app.drain(timeout):
        logger.warning("%d in-flight requests did not finish in %ss", app.inflight, timeout)
    try:
        await asyncio.wait_for(server.close_all_connections(), 1)
    except asyncio.TimeoutError:
        pass
    await app.shutdown()
