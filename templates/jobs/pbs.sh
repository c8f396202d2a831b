#!/bin/bash
# One alloop DFT calculation as a PBS job. Rendered by alloop.cluster.batch: double-brace placeholders are
# filled in, optional directives (queue, account, extra_directives) come in as "options".
# PBS does not pass on the submitting shell's environment: load what the job needs with `modules` and
# `prologue` (or add "-V" to extra_directives).
#PBS -N {{job_name}}
#PBS -o {{output}}
#PBS -j oe
#PBS -l {{select}}
#PBS -l walltime={{walltime}}
{{options}}

cd {{workdir}}
{{modules}}
{{prologue}}
{{command}}
