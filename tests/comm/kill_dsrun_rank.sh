#!/bin/bash
# Kills one rank of a running `dsrun --nproc 3` with SIGKILL: every rank must be gone and dsrun
# must exit non-zero within 60 s, naming the dead rank.
# usage: kill_dsrun_rank.sh DSCOMPILE DSRUN SOURCE_DIR
set -u
dscompile=$1 dsrun=$2 src=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$dscompile" "$src/models/gpt/gpt.onnx" --config "$src/models/zero_configs/stage2_w3.json" --world-size 3 -q \
  -o "$tmp/plan.dsplan" || exit 1
"$dsrun" "$tmp/plan.dsplan" --nproc 3 --data "$src/models/gpt/data" --epochs 100000 --threads 1 -q >"$tmp/out" 2>&1 &
launcher=$!  # dsrun execs mpirun in place, so this is mpirun; its children are the ranks
ranks=""
for _ in $(seq 1 100); do
  ranks=$(pgrep -P "$launcher" | tr '\n' ' ')
  [ "$(wc -w <<<"$ranks")" -ge 3 ] && break
  sleep 0.1
done
sleep 1  # let training run: the ranks are inside collectives
victim=$(awk '{print $2}' <<<"$ranks")
[ -n "$victim" ] || { echo "FAIL: no ranks found under $launcher"; kill -9 "$launcher"; exit 1; }
start=$(date +%s)
kill -9 "$victim"
for _ in $(seq 1 600); do
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
wait "$launcher"
rc=$?
# mpirun has returned; its ranks must follow (zombies awaiting reaping do not count).
alive() { for p in $ranks; do [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && echo "$p"; done; }
while [ -n "$(alive)" ] && [ $(( $(date +%s) - start )) -lt 60 ]; do sleep 0.2; done
elapsed=$(( $(date +%s) - start ))
cat "$tmp/out"
echo "--- exit status $rc after ${elapsed} s"
survivors=$(alive)
if [ "$rc" -eq 0 ] || [ "$elapsed" -ge 60 ] || [ -n "$survivors" ]; then
  echo "FAIL: exit $rc, ${elapsed} s, ranks still alive: ${survivors:-none}"
  kill -9 $survivors "$launcher" 2>/dev/null
  exit 1
fi
grep -qE "rank [0-9]+.*(exited on signal 9|signal 9|killed)|process rank [0-9]+" "$tmp/out" || { echo "FAIL: no rank named"; exit 1; }
echo "PASS"
