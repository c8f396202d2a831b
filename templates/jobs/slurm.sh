#!/bin/bash
# One alloop DFT calculation as a SLURM job. Rendered by alloop.cluster.batch: double-brace placeholders are
# filled in, optional directives (partition, account, memory, extra_directives) come in as "options".
#SBATCH --job-name={{job_name}}
#SBATCH --output={{output}}
#SBATCH --nodes={{nodes}}
#SBATCH --ntasks={{ntasks}}
#SBATCH --cpus-per-task={{cpus_per_task}}
#SBATCH --time={{walltime}}
{{options}}

cd {{workdir}}
{{modules}}
{{prologue}}
{{command}}
