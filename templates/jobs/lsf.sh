#!/bin/bash
# One alloop DFT calculation as an LSF job (submitted as `bsub < job.sh`). Rendered by
# alloop.cluster.batch: double-brace placeholders are filled in, optional directives (queue, project, memory,
# extra_directives) come in as "options".
#BSUB -J {{job_name}}
#BSUB -o {{output}}
#BSUB -n {{slots}}
#BSUB -W {{walltime}}
{{options}}

cd {{workdir}}
{{modules}}
{{prologue}}
{{command}}
