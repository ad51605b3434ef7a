#!/usr/bin/env bash
# Create the virtual environment bench/bench_engine.py runs in, with the peer order books.
#
# The peers are installed here only, never as project dependencies. The environment
# includes the system site-packages, so fixgw's own dependencies (sortedcontainers)
# come from there. A peer that fails to install is skipped by the benchmark, which says so.
set -u
VENV="${FIXGW_BENCH_VENV:-/tmp/fixgw-bench-venv}"
python3 -m venv --system-site-packages "$VENV"
for requirement in lightmatchingengine==2019.1.4 pyorderbook==0.4.9 liquibook==2.0.1; do
    "$VENV/bin/pip" install --quiet "$requirement" || echo "could not install $requirement; the benchmark will skip it" >&2
done
echo "run: $VENV/bin/python bench/bench_engine.py"
