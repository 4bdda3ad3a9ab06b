#!/usr/bin/env bash
# The test command of the README: the whole suite on every backend, with coverage.
# Needs the project installed (pip install -e ".[test]"); noida-db comes with the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pytest --cov --cov-report=term-missing:skip-covered "$@"
