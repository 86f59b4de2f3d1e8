#!/usr/bin/env bash
# tools/sanitize.sh — the whole C++ and Python test suites under AddressSanitizer +
# UndefinedBehaviorSanitizer (GCC's runtimes).
#
#   tools/sanitize.sh                 build, then run ctest and pytest (all of tests/)
#   tools/sanitize.sh build           only build (the C++ tests and the Python venv)
#   tools/sanitize.sh pytest ARGS...  pytest ARGS under the sanitizers (after a build)
#   tools/sanitize.sh python ARGS...  python ARGS under the sanitizers (the fuzz harness uses it)
#
# The extension is built with FASTCONV_SANITIZE=ON into its own venv ($FASTCONV_ASAN_VENV,
# default /tmp/fastconv-asan), which sees the main interpreter's packages (numpy, pytest, torch,
# ...) through a path file but not its fastconv. The interpreter itself is not instrumented, so
# the runtimes are preloaded, Python's allocator is plain malloc (PYTHONMALLOC=malloc) and leak
# detection is off (the interpreter keeps its objects at exit). Any report fails the run
# (halt_on_error, -fno-sanitize-recover); reports go to stderr and to $LOG_DIR/asan.*.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${FASTCONV_ASAN_VENV:-/tmp/fastconv-asan}
CPP_BUILD=${FASTCONV_ASAN_CPP_BUILD:-/tmp/fastconv-asan-cpp}
LOG_DIR=${LOG_DIR:-$VENV/logs}
PY=${PYTHON:-python3}

build() {
  cmake -S "$ROOT" -B "$CPP_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DFASTCONV_SANITIZE=ON >/dev/null
  ninja -C "$CPP_BUILD"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --without-pip "$VENV"
    # the main interpreter's packages, appended after the venv's own (its .pth files, such as an
    # editable fastconv's finder, are not run)
    "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' \
      > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/main.pth"
  fi
  local site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PY" -m pip install -q --no-deps --no-build-isolation --target "$site/../fastconv-asan-wheel" \
        --upgrade -Cbuild-dir="$ROOT/build-asan" -Ccmake.build-type=RelWithDebInfo \
        -Cinstall.strip=false -Ccmake.define.FASTCONV_SANITIZE=ON "$ROOT"
  rm -rf "$site/fastconv"
  mv "$site/../fastconv-asan-wheel/fastconv" "$site/fastconv"
  rm -rf "$site/../fastconv-asan-wheel"
}

run() {
  mkdir -p "$LOG_DIR"
  local asan ubsan
  asan=$(gcc -print-file-name=libasan.so)
  ubsan=$(gcc -print-file-name=libubsan.so)
  LD_PRELOAD="$asan $ubsan" PYTHONMALLOC=malloc \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:log_path=$LOG_DIR/asan:log_exe_name=0${ASAN_EXTRA:+:$ASAN_EXTRA}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$LOG_DIR/ubsan" \
    "$VENV/bin/python" "$@"
}

case "${1:-all}" in
  build) build ;;
  pytest) shift; run -m pytest "$@" ;;
  python) shift; run "$@" ;;
  all)
    build
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 ctest --test-dir "$CPP_BUILD" --output-on-failure
    rm -rf "$LOG_DIR"
    status=0
    run -m pytest -q -p no:cacheprovider "$ROOT/tests" || status=$?
    reports=$(ls "$LOG_DIR" 2>/dev/null | wc -l)
    echo "sanitizer reports: $reports (in $LOG_DIR)"
    [ "$reports" -eq 0 ] && exit "$status" || exit 1 ;;
  *) echo "usage: $0 [build | pytest ARGS | python ARGS | all]" >&2; exit 2 ;;
esac
