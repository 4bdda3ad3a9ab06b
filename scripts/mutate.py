"""Mutation testing of the core modules with mutmut, one module at a time.

    python scripts/mutate.py                 # every module, in the order below
    python scripts/mutate.py options auth    # these modules only
    python scripts/mutate.py --report        # the score table of what has run so far
    python scripts/mutate.py --fresh auth    # again from scratch, after the tests changed
    python scripts/mutate.py --retest auth   # the survivors, timeouts and mutants not run again
    python scripts/mutate.py --retest --survivors load  # the survivors and timeouts only

Each module gets a work directory of its own (``.mutation/<module>/``: a ``setup.cfg``
naming the module and the test files that cover it, links to the sources), so its
mutants, its test-to-function map and its results are kept apart: a run stopped half
way resumes where it stopped, and modules can run one after the other in the
background. Only the embedded backend runs (``BIOTHINGS_TEST_BACKENDS=embedded``):
the web layer's mutants die on one engine; the loader's command line runs in the tests'
process (``BIOTHINGS_TEST_LOAD_IN_PROCESS``), since mutmut sees only that process's calls.
``mutmut`` itself then runs, for each mutant, only the tests that called the mutated function.

Survivors: ``cd .mutation/<module> && ../../.venv/bin/mutmut show <mutant name>``.
docs/mutation.md records the scores and why each remaining survivor is equivalent.
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"

# module -> (source file, the test files that exercise it)
UNIT, CONTRACT, SERVER, TOOLS = "tests/unit/", "tests/contract/", "tests/server/", "tests/tools/"
MODULES = {
    "options": ("biothings/web/options.py", [UNIT + "test_options.py", CONTRACT + "test_config_errors.py"]),
    "caching": ("biothings/web/caching.py", [CONTRACT + "test_caching.py"]),
    "auth": ("biothings/web/auth.py", [SERVER + "test_auth.py", UNIT + "test_auth_tokens.py"]),
    "limits": ("biothings/web/limits.py", [CONTRACT + "test_limits.py", CONTRACT + "test_boundaries.py"]),
    "builder": ("biothings/web/pipeline/builder.py",
                [UNIT + "test_builder.py", *(CONTRACT + f"test_{name}.py" for name in (
                    "boundaries", "limits", "query", "query_string", "security", "batch", "facets", "budgets"))]),
    "transform": ("biothings/web/pipeline/transform.py",
                  [UNIT + "test_transform.py", *(CONTRACT + f"test_{name}.py" for name in (
                      "annotation", "query", "batch", "facets", "http", "parity"))]),
    "query": ("biothings/web/engines/embedded/query.py",
              [UNIT + "test_embedded_engine.py", UNIT + "test_embedded_ranges.py", UNIT + "test_embedded_queries.py",
               CONTRACT + "test_engine_parity.py",
               CONTRACT + "test_query_string.py"]),
    "aggs": ("biothings/web/engines/embedded/aggs.py",
             [UNIT + "test_aggs.py", CONTRACT + "test_facets.py", UNIT + "test_embedded_engine.py",
              CONTRACT + "test_engine_parity.py"]),
    "load": ("biothings/web/load.py", [TOOLS + "test_load.py", TOOLS + "test_load_safety.py", TOOLS + "test_load_faults.py"]),
    "store": ("biothings/web/engines/embedded/store.py",
              [UNIT + "test_embedded_engine.py", UNIT + "test_store.py", TOOLS + "test_load.py", TOOLS + "test_load_safety.py",
               CONTRACT + "test_reload.py"]),
}
# what the tests read besides the package and tests/
ALSO_COPY = ["config.py", "pytest.ini"]
# Imported by the Python subprocesses of tests (``python -m biothings.web.load``, whose
# PYTHONPATH holds the mutants' copy of the project): during mutmut's first pass, which
# records which tests call which function, a subprocess would record its calls too and
# fail to find mutmut's config from its own working directory; its calls are not needed
# (the parent's are), so it runs the original code then. With a mutant under test it
# runs that mutant, as the tests' own process does.
SUBPROCESS_HOOK = """import os
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    os.environ["MUTANT_UNDER_TEST"] = ""
"""
KEPT = "verdicts.json"  # in a module's work directory
STATUSES = ("killed", "survived", "timeout", "segfault", "suspicious", "no tests", "skipped", "not checked")


def workdir(module):
    """``.mutation/<module>/``: its config, links to the sources, mutmut's ``mutants/``."""
    source, tests = MODULES[module]
    directory = WORK / module
    directory.mkdir(parents=True, exist_ok=True)
    for name in ["biothings", "tests", *ALSO_COPY]:
        link = directory / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    lines = ["[mutmut]", "source_paths = biothings", f"only_mutate = {source}",
             "pytest_add_cli_args_test_selection =", *(f"    {test}" for test in tests),
             "pytest_add_cli_args =", "    -p", "    no:cacheprovider",
             "also_copy =", *(f"    {name}" for name in [*ALSO_COPY, "sitecustomize.py"]),
             "use_git_change_detection = false", ""]
    (directory / "sitecustomize.py").write_text(SUBPROCESS_HOOK)
    config = "\n".join(lines)
    path = directory / "setup.cfg"
    if not path.exists() or path.read_text() != config:
        path.write_text(config)
    return directory


def run(module, max_children, fresh=False, retest=False, survivors_only=False):
    directory = workdir(module)
    if fresh:  # after the tests changed: mutmut keeps the verdicts it has
        shutil.rmtree(directory / "mutants", ignore_errors=True)
        (directory / KEPT).unlink(missing_ok=True)
    # mutmut tries again only the mutants it is given by name: the survivors and those not
    # run yet, after new tests
    names = survivors(module, not survivors_only) if retest else []
    if retest and not names:
        return
    mutmut = shutil.which("mutmut", path=os.path.dirname(sys.executable)) or "mutmut"
    # the loader's command line in the tests' own process (tests/tools/test_load.py):
    # mutmut maps mutants to the tests that called them in its process only
    env = {**os.environ, "BIOTHINGS_TEST_BACKENDS": "embedded", "BIOTHINGS_TEST_LOAD_IN_PROCESS": "1"}
    print(f"== {module}: {MODULES[module][0]}", flush=True)
    with imitations() as urls:  # started once, not by each mutant's test session
        env.update(urls)
        subprocess.run([mutmut, "run", "--max-children", str(max_children), *names], cwd=directory, env=env,
                       check=False)
    keep_verdicts(module)


@contextlib.contextmanager
def imitations():
    """noida-db and osmem-server on loopback for the run, named to the tests' fixtures
    (``BIOTHINGS_TEST_NOIDA_URL``, ``BIOTHINGS_TEST_OSMEM_URL``)."""
    sys.path.insert(0, str(ROOT))
    from tests.servers import NoidaElasticsearch, OsmemOpenSearch
    data = Path(tempfile.mkdtemp(prefix="biothings-mutation-"))
    (data / "es").mkdir()
    (data / "os").mkdir()
    noida = NoidaElasticsearch(str(data / "es")).start()
    try:
        osmem = OsmemOpenSearch(str(data / "os")).start()
        try:
            yield {"BIOTHINGS_TEST_NOIDA_URL": noida.url, "BIOTHINGS_TEST_OSMEM_URL": osmem.url}
        finally:
            osmem.stop()
    finally:
        noida.stop()
        shutil.rmtree(data, ignore_errors=True)


def verdicts(module):
    """{mutant name: exit code} of a module's mutants (empty before its first run): mutmut's
    latest record, over the verdicts kept from earlier runs of the same mutants."""
    meta = WORK / module / "mutants" / (MODULES[module][0] + ".meta")
    latest = json.loads(meta.read_text()).get("exit_code_by_key", {}) if meta.exists() else {}
    kept_file = WORK / module / KEPT
    kept = json.loads(kept_file.read_text()) if kept_file.exists() else {}
    # a retry names only the survivors, and mutmut forgets the verdicts of the others
    return {name: code if code is not None else kept.get(name) for name, code in latest.items()}


def keep_verdicts(module):
    """Writes the merged verdicts beside mutmut's record, for the next retry's report."""
    codes = verdicts(module)
    if codes:
        (WORK / module / KEPT).write_text(json.dumps(codes, indent=0, sort_keys=True))


def survivors(module, not_run=True):
    """The mutants to try again: the survivors and timeouts (a loaded machine times out
    mutants the tests would kill), and (``not_run``) those never tried."""
    from mutmut.stats import status_by_exit_code
    wanted = ("survived", "timeout", "no tests") + (("not checked",) if not_run else ())
    return sorted(name for name, code in verdicts(module).items() if status_by_exit_code[code] in wanted)


def score(module):
    """Counts per status of a module's mutants (``None`` before its first run)."""
    from mutmut.stats import status_by_exit_code
    codes = verdicts(module)
    if not codes:
        return None
    counts = dict.fromkeys(STATUSES, 0)
    for code in codes.values():
        status = status_by_exit_code[code]
        counts[status] = counts.get(status, 0) + 1
    counts["total"] = len(codes)
    return counts


def report():
    print("| module | mutants | killed | survived | timeout | no tests | not run | score |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for module, (source, _) in MODULES.items():
        counts = score(module)
        if counts is None:
            print(f"| {source} | not run | | | | | | |")
            continue
        # a mutant whose tests time out or crash is caught too (an endless loop, a recursion)
        caught = counts["killed"] + counts["timeout"] + counts["segfault"]
        tried = caught + counts["survived"] + counts["suspicious"] + counts["no tests"]
        percent = f"{100 * caught / tried:.0f}%" if tried else "-"
        print(f"| {source} | {counts['total']} | {counts['killed']} | {counts['survived']} | {counts['timeout']} "
              f"| {counts['no tests']} | {counts['not checked']} | {percent} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="module", help=f"any of: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--report", action="store_true", help="print the score table and stop")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier verdicts (after the tests changed)")
    parser.add_argument("--retest", action="store_true",
                        help="try the survivors and the mutants not run yet again (after new tests)")
    parser.add_argument("--survivors", action="store_true",
                        help="with --retest: the survivors only (a run stopped part way stays where it stopped)")
    args = parser.parse_args()
    unknown = [name for name in args.modules if name not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; known: {', '.join(MODULES)}")
    if not args.report:
        for module in args.modules or MODULES:
            run(module, args.max_children, args.fresh, args.retest, args.survivors)
    report()


if __name__ == "__main__":
    main()
