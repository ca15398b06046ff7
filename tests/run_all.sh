#!/usr/bin/env bash
# Runs every test of ringmail against the build in $1 (tools/dev test calls
# this after building). Stages: the clang-format check, unit tests (gtest via meson), the same unit
# tests under ASan+UBSan, a fuzz smoke of every parser (libFuzzer), the
# integration suite (pytest, real peers) on the io_uring and the epoll
# backend, and the kill -9 crash test. Prints each runner's summary and a
# final "total: N passed, N failed" line; exits non-zero on any failure.
#
# RINGMAIL_FUZZ_SECONDS (default 20 per target) and RINGMAIL_CRASH_CYCLES
# (default 20) make the smoke runs longer on demand.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
cache=${RINGMAIL_CACHE:-/var/cache/ringmail-build}
fuzz_s=${RINGMAIL_FUZZ_SECONDS:-20}
crash_cycles=${RINGMAIL_CRASH_CYCLES:-20}
py=/usr/bin/python3
passed=0
failed=0
failures=()

note() { printf '\n=== %s\n' "$*"; }
count() {  # count NAME PASSED FAILED
  passed=$((passed + $2))
  failed=$((failed + $3))
  if [ "$3" -gt 0 ]; then failures+=("$1"); fi
}

# meson test prints "Ok: N" and "Fail: N"; take both (plus timeouts).
run_meson() {
  local name=$1 dir=$2
  local out
  out=$(meson test -C "$dir" --suite unit --print-errorlogs 2>&1)
  local rc=$?
  printf '%s\n' "$out" | grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Timeout|Skipped):' 
  local ok fail to
  ok=$(printf '%s\n' "$out" | awk '/^Ok:/{print $2}')
  fail=$(printf '%s\n' "$out" | awk '/^Fail:/{print $2}')
  to=$(printf '%s\n' "$out" | awk '/^Timeout:/{print $2}')
  ok=${ok:-0}; fail=$(( ${fail:-0} + ${to:-0} ))
  if [ $rc -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; printf '%s\n' "$out" | tail -20; fi
  echo "$name: $ok passed, $fail failed"
  count "$name" "$ok" "$fail"
}

note "format (clang-format, .clang-format at the root)"
# Every C++ file of the tree as clang-format would write it: a change that
# is not formatted fails here, before anything runs. Fix with
#   git ls-files '*.cc' '*.h' | xargs clang-format -i
unformatted=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$top/$f" >/dev/null 2>&1 || unformatted+=("$f")
done < <(cd "$top" && { git ls-files '*.cc' '*.h' 2>/dev/null || find proto tls storage engine tools bench tests -name '*.cc' -o -name '*.h'; })
if [ ${#unformatted[@]} -eq 0 ]; then
  echo "format: 1 passed, 0 failed"
  count format 1 0
else
  printf 'not clang-formatted: %s\n' "${unformatted[@]}"
  echo "format: 0 passed, 1 failed"
  count format 0 1
fi

note "unit tests (gtest)"
run_meson unit "$build"

note "unit tests under ASan+UBSan"
asan=$top/build-asan
prefix=$(cat "$cache/.prefix" 2>/dev/null || echo system)
wolf=(-Dwolfssl=system)
[ "$prefix" != system ] && wolf=(-Dwolfssl=bundled -Dwolfssl_prefix="$prefix")
if [ ! -f "$asan/build.ninja" ]; then
  meson setup "$asan" "$top" --buildtype=debug -Db_sanitize=address,undefined \
    -Db_lundef=false -Dbenchmarks=false "${wolf[@]}" >/dev/null
fi
if ninja -C "$asan" >"$asan.log" 2>&1; then
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    run_meson unit-asan "$asan"
else
  tail -30 "$asan.log"
  count unit-asan 0 1
fi

note "fuzz smoke (libFuzzer, ${fuzz_s}s per target)"
fz=$top/build-fuzz
if [ ! -f "$fz/build.ninja" ]; then
  CXX=clang++ meson setup "$fz" "$top" -Dfuzz=true -Dtests=false -Dbenchmarks=false \
    -Db_sanitize=address,undefined -Db_lundef=false "${wolf[@]}" >/dev/null
fi
mapfile -t targets < <(grep -v -e '^#' -e '^$' "$top/tests/fuzz/targets.txt" | cut -d' ' -f1)
if ninja -C "$fz" $(printf 'tests/fuzz_%s ' "${targets[@]}") >"$fz.log" 2>&1; then
  fok=0; ffail=0
  for t in "${targets[@]}"; do
    work=$(mktemp -d)
    if "$fz/tests/fuzz_$t" -max_total_time="$fuzz_s" -print_final_stats=0 \
        -artifact_prefix="$work/" "$work" "$top/tests/fuzz/corpus/$t" >"$work/log" 2>&1; then
      echo "fuzz_$t: $(grep -E '^Done' "$work/log")"
      fok=$((fok + 1))
    else
      echo "fuzz_$t: FAILED"; grep -E 'ERROR|SUMMARY|runtime error' "$work/log" | head -5
      ls "$work"/crash-* 2>/dev/null
      ffail=$((ffail + 1))
    fi
    rm -rf "$work"
  done
  echo "fuzz: $fok passed, $ffail failed"
  count fuzz "$fok" "$ffail"
else
  tail -30 "$fz.log"
  count fuzz 0 1
fi

run_pytest() {
  local name=$1
  shift
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  printf '%s\n' "$out" | tail -25
  local p f e
  p=$(printf '%s\n' "$out" | tail -1 | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
  f=$(printf '%s\n' "$out" | tail -1 | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
  e=$(printf '%s\n' "$out" | tail -1 | grep -oE '[0-9]+ error' | grep -oE '[0-9]+')
  p=${p:-0}; f=$(( ${f:-0} + ${e:-0} ))
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$name: ran no test"; fi
  echo "$name: $p passed, $f failed"
  count "$name" "$p" "$f"
}

for backend in io_uring epoll; do
  note "integration tests (pytest, real peers) on the $backend backend"
  run_pytest "integration-$backend" env RINGMAILD="$build/engine/ringmaild" \
    RINGMAIL_BACKEND=$backend $py -m pytest -q -p no:cacheprovider "$top/tests/integration"
done

note "crash test: kill -9 under load (local and relayed recipients), $crash_cycles cycles"
out=$($py "$top/tests/crash/crash_test.py" --ringmaild "$build/engine/ringmaild" \
  --cycles "$crash_cycles" --backend io_uring --relay 2>&1)
rc=$?
printf '%s\n' "$out" | tail -6
if [ $rc -eq 0 ]; then count crash 1 0; echo "crash: 1 passed, 0 failed"; else count crash 0 1; echo "crash: 0 passed, 1 failed"; fi

echo
if [ ${#failures[@]} -gt 0 ]; then echo "failed stages: ${failures[*]}"; fi
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
