#!/usr/bin/env bash
# Interrupted and failing writes leave nothing behind (issue 10, item 5):
# `loki calibrate` on fixture-15m is killed midway with SIGINT and with
# SIGTERM (after its first window), and made to fail while writing (file
# size limit with SIGXFSZ ignored, so write() fails with EFBIG; -o into a
# missing directory; -o below a regular file). Each run must exit non-zero
# (128 + signal for the signals: the handler stops the run, it is not killed
# by the signal), leave no output file and no temporary file.
set -u
LOKI=$1; SHARED=$2
HF=$SHARED/models/fixture-15m
TEXT=$SHARED/data/wikitext2-valid.tokens
[ -d "$HF" ] && [ -f "$TEXT" ] || { echo "SKIP: $HF or $TEXT absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

# nothing but the logs in $T: no output, no "<out>.tmp<pid>"; then clear it
# for the next case
clean() { local left; left=$(ls "$T" | grep -v '^log'); rm -rf "$T"/out*; [ -z "$left" ]; }

# interrupt SIG: start a long calibration in the background (where a
# non-interactive shell starts it with SIGINT ignored: loki installs its own
# handler all the same) (up to 400 windows of 256 tokens),
# wait for the first window on the progress bar, send SIG, wait for the exit
interrupt() {
  local sig=$1 want=$2
  "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 400 -t 1 -o "$T/out.pca.gguf" >"$T/log.out" 2>"$T/log.err" &
  local pid=$! i=0
  while ! grep -q ' 1/400 windows' "$T/log.err" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  kill -"$sig" $pid
  wait $pid; local rc=$?
  [ $rc -eq "$want" ] && ok || bad "$sig: exit code $rc, want $want: $(tail -c 300 "$T/log.err")"
  grep -q "interrupted by signal" "$T/log.err" && ok || bad "$sig: no message: $(tail -c 300 "$T/log.err")"
  clean && ok || bad "$sig: files left: $(ls "$T")"
  grep -q "wrote" "$T/log.out" && bad "$sig: reports a file written" || ok
}
interrupt INT 130
interrupt TERM 143

# a write that fails midway: files larger than 64 kB refused (the PCA file is
# ~520 kB); SIGXFSZ ignored so write() returns EFBIG instead of killing loki
( ulimit -f 64; trap '' XFSZ
  exec "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 1 -t 1 -o "$T/out.pca.gguf" >"$T/log.out" 2>"$T/log.err" )
rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "out.pca.gguf: write failed" "$T/log.err" && ok \
  || bad "EFBIG: rc $rc: $(tail -c 300 "$T/log.err")"
clean && ok || bad "EFBIG: files left: $(ls "$T")"

for o in "$T/missing/out.pca.gguf" "$T/log.out/out.pca.gguf"; do
  "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 1 -t 1 -o "$o" >"$T/log.out" 2>"$T/log.err"; rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q -- "-o $o" "$T/log.err" && ok || bad "-o $o: rc $rc: $(cat "$T/log.err")"
  clean && ok || bad "-o $o: files left: $(ls "$T")"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
