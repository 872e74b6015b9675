#!/usr/bin/env bash
# One entry point that does its own set-up on a fresh machine.
#   bash scripts/run.sh smoke   # the main job: smoke reproduction of every table (CPU)
#   bash scripts/run.sh test    # lint + unit tests + notebooks under nbval
#   bash scripts/run.sh bench   # benchmarks (installs normflows, a benchmark-only dependency)
#   bash scripts/run.sh setup   # only create .venv and install
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ATTNFLOW_VENV:-.venv}"
PY="$VENV/bin/python"
# data root: $ATTNFLOW_DATA if set, else ../shared/data where the CI and developers keep MNIST / CIFAR-10
if [ -z "${ATTNFLOW_DATA:-}" ] && [ -d ../shared/data ]; then
  ATTNFLOW_DATA="$(cd ../shared/data && pwd)"
  export ATTNFLOW_DATA
fi

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$PY" -m pip install -q --disable-pip-version-check -e ".[notebooks,metrics,test]"
}

cmd="${1:-smoke}"
shift || true
case "$cmd" in
  setup) setup ;;
  smoke)
    setup
    "$PY" -m attnflow_core.repro --profile smoke --force "$@" ;;
  test)
    setup
    "$PY" -m ruff check attnflow_core tests benchmarks notebooks
    "$PY" -m pytest -q -p no:cacheprovider tests "$@"
    # the notebooks read the committed cell records from a copy and write only into it: results/ stays as committed
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    cp -r results "$scratch/results"
    before="$(find results -type f -exec sha256sum {} + | sort)"
    ATTNFLOW_RESULTS="$scratch/results" "$PY" -m pytest -q -p no:cacheprovider --nbval-lax notebooks/*.ipynb
    if [ "$before" != "$(find results -type f -exec sha256sum {} + | sort)" ]; then
      echo "the tests changed files under results/ (they must write only into temporary roots)" >&2; exit 1
    fi ;;
  bench)
    setup
    "$PY" -m pip install -q --disable-pip-version-check -e ".[bench]"
    out=results/benchmarks
    "$PY" benchmarks/bench_attention.py "$@"
    "$PY" benchmarks/bench_resflow.py | tee "$out/resflow_cpu.txt"
    "$PY" benchmarks/bench_resflow.py --size 4 --channels 12 | tee "$out/resflow_small_map_certificate_cpu.txt"
    "$PY" benchmarks/bench_speed.py | tee "$out/speed_cpu.txt"          # ConvLSTM step, sampling per family
    "$PY" benchmarks/bench_mixlogistic.py | tee "$out/mixlogistic_cpu.txt"
    "$PY" benchmarks/bench_itrans.py | tee "$out/itrans_cpu.txt"
    "$PY" benchmarks/bench_acf.py | tee "$out/acf_cpu.txt"
    echo "== before/after ratios and their targets"
    grep -h '^RATIO' "$out"/*.txt ;;
  *) echo "usage: bash scripts/run.sh {smoke|test|bench|setup}" >&2; exit 2 ;;
esac
