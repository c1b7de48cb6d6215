#!/usr/bin/env bash
# Submits an audit as a Slurm job array of SHARDS tasks (audit-array.sbatch)
# and the job that merges their folders once all of them have succeeded
# (merge.sbatch, sbatch --dependency=afterok). It prints the two job IDs;
# follow the shards with `marginaudit status "$WORK"/shard-*`.
#
#   CHECKPOINTS=ckpts WORK=/scratch/audit SHARDS=4 AUDIT_FLAGS="--data mnist --n 1000" deploy/slurm/submit.sh
#
# MARGINAUDIT names the program (default: marginaudit on PATH); the jobs'
# logs go to $WORK/logs. Extra sbatch options, such as a partition or an
# account, go in SBATCH_FLAGS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${CHECKPOINTS:?set CHECKPOINTS to the checkpoints folder}"
: "${WORK:?set WORK to the folder of the shards}"
export CHECKPOINTS WORK SHARDS=${SHARDS:-4} AUDIT_FLAGS=${AUDIT_FLAGS:---data mnist --n 1000} MARGINAUDIT=${MARGINAUDIT:-marginaudit}
read -r -a extra <<<"${SBATCH_FLAGS:-}"
mkdir -p "$WORK/logs"

array=$(sbatch --parsable "${extra[@]}" --array=0-$((SHARDS - 1)) --output="$WORK/logs/audit-%A_%a.out" "$here/audit-array.sbatch")
array=${array%%;*} # "ID;CLUSTER" on federated clusters
merge=$(sbatch --parsable "${extra[@]}" --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
	--output="$WORK/logs/merge-%j.out" "$here/merge.sbatch")
merge=${merge%%;*}
echo "array $array merge $merge"
