#!/bin/bash
# alloop's controller as a SLURM job that resubmits itself until the campaign is finished.
#
#   sbatch templates/jobs/controller-slurm.sh /path/to/campaign.yaml
#
# SLURM sends SIGTERM two minutes before the walltime (--signal); `alloop run` then commits its current
# transaction and exits 0, leaving running DFT batch jobs alone. The next job re-attaches to them from
# the database. Edit the directives for your site (partition, account, walltime, modules, venv path).
#SBATCH --job-name=alloop-controller
#SBATCH --output=alloop-controller-%j.out
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --signal=B:TERM@120

set -u
CAMPAIGN=${1:?usage: sbatch controller-slurm.sh CAMPAIGN.yaml}
ALLOOP=${ALLOOP:-alloop}          # e.g. /path/to/alloop/.venv/bin/alloop

# `exec` is not used: bash must stay to forward SIGTERM to alloop and then decide about resubmission.
"$ALLOOP" run "$CAMPAIGN" &
PID=$!
trap 'kill -TERM $PID' TERM
wait $PID; wait $PID
RC=$?

STATUS=$("$ALLOOP" status "$CAMPAIGN" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
case "$STATUS" in
  converged|max_iterations) echo "campaign finished: $STATUS"; exit 0 ;;
  failed) echo "campaign failed; see: $ALLOOP status $CAMPAIGN" >&2; exit 1 ;;
esac
if [ "$RC" -ne 0 ]; then
  echo "alloop run exited with $RC; not resubmitting (see the log in the campaign's workdir)" >&2
  exit "$RC"
fi
echo "campaign not finished ($STATUS): resubmitting"
sbatch --dependency=singleton "$0" "$CAMPAIGN"
