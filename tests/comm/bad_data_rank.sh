#!/bin/bash
# One rank of a 2-rank dsrun cannot read its data (rank BAD_RANK gets an empty folder): the whole
# job must end non-zero within 10 s with that rank's message naming the file, not wait in the first
# collective until the 300 s timeout.
# usage: bad_data_rank.sh DSCOMPILE DSRUN SOURCE_DIR BAD_RANK MPIRUN [MPIRUN_ARGS...]
set -u
dscompile=$1 dsrun=$2 src=$3 bad_rank=$4
shift 4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$dscompile" "$src/models/mlp/mlp.onnx" --config "$src/models/zero_configs/stage2_w2.json" --world-size 2 -q \
  -o "$tmp/plan.dsplan" || exit 1
mkdir "$tmp/empty"
data=("$src/models/mlp/data" "$src/models/mlp/data")
data[$bad_rank]="$tmp/empty"
rank_cmd() { echo -np 1 "$dsrun" "$tmp/plan.dsplan" --data "${data[$1]}" --threads 1 -q; }
out=$("$(dirname "$0")/expect_failure.sh" 10 "dsrun: error: rank $bad_rank: $tmp/empty/x.npy: missing" \
  "$@" $(rank_cmd 0) : $(rank_cmd 1))
grep -v '^PASS$' <<<"$out"  # ctest looks for this script's own verdict below
grep -q '^PASS$' <<<"$out" || exit 1
# The good rank learnt of the failure in setup, not by being aborted in the middle of a collective.
if ! grep -q "dsrun: error: rank $((1 - bad_rank)): 1 of 2 ranks failed to start" <<<"$out"; then
  echo "FAIL: the other rank did not end in the setup agreement"
  exit 1
fi
echo "PASS: the job ended in setup with rank $bad_rank's message"
