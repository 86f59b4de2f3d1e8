#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] — fuzz_ops.py on the sanitizer build for SECONDS (default 1800).
#
# Builds the sanitizer venv when it is missing (tools/sanitize.sh build), seeds a corpus of 256
# pseudo-random inputs of 16 B to 4 KiB (fixed seed), then runs libFuzzer through atheris with a
# 60 s per-input limit. Coverage: GCC's ASan runtime, preloaded first, also defines libFuzzer's
# coverage callbacks, so atheris's Python coverage feedback is off on this build: libFuzzer
# keeps one corpus unit, and the harness's custom mutator feeds it fresh random inputs of up to
# 4 KiB half the time (a random search over the argument space, not a coverage-guided one).
# A single allocation above 2 GiB fails (ASan's max_allocation_size_mb; the library and NumPy
# raise MemoryError): a valid request for tens of GB, such as an adaptive pooling to 2**31
# outputs, is then its MemoryError path rather than an out-of-memory stop of the fuzzer.
# Findings land in
# fuzz/findings/ (crash-*, timeout-*, oom-*); the statistics of each libFuzzer run print at its
# end, and the last line counts the findings (exit status 1 when there are any). ASan's
# "failed to allocate" warnings in its log are the MemoryError path, not reports.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-1800}
VENV=${FASTCONV_ASAN_VENV:-/tmp/fastconv-asan}
[ -x "$VENV/bin/python" ] || tools/sanitize.sh build
python3 -c 'import atheris' 2>/dev/null || python3 -m pip install -q atheris
CORPUS=${CORPUS:-/tmp/fastconv-fuzz-corpus}
mkdir -p "$CORPUS" fuzz/findings
python3 - "$CORPUS" <<'PY'
import os, random, sys
rng = random.Random(20261127)
for i in range(256):
    n = rng.choice([16, 64, 256, 1024, 4096])
    with open(os.path.join(sys.argv[1], f"seed-{i:03d}"), "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(n)))
PY
# libFuzzer stops at a finding (its fork mode does not run under atheris): start it again until
# the time is spent, so one run collects every finding.
end=$((SECONDS + SECONDS_TO_RUN))
runs=0
while [ $((end - SECONDS)) -gt 5 ]; do
  runs=$((runs + 1))
  status=0
  ASAN_EXTRA=max_allocation_size_mb=2048 tools/sanitize.sh python fuzz/fuzz_ops.py -max_total_time=$((end - SECONDS)) -timeout=60 \
    -len_control=0 -max_len=4096 -rss_limit_mb=16384 -print_final_stats=1 \
    -artifact_prefix=fuzz/findings/ "$CORPUS" || status=$?
  echo "fuzz run $runs ended with status $status after ${SECONDS}s"
done
# crash-, timeout-, oom- and leak- files are findings; slow-unit- files (an input that took
# over 10 s but under the 60 s limit) are reported, not counted.
findings=$(find fuzz/findings -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' | wc -l)
slow=$(find fuzz/findings -name 'slow-unit-*' | wc -l)
echo "fuzzed ${SECONDS}s in $runs runs; findings: $findings, slow inputs: $slow (fuzz/findings/)"
[ "$findings" -eq 0 ]
