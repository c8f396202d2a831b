"""alloop: an active-learning loop for machine-learned interatomic potentials.

Implements the heterogeneous-ensemble uncertainty U of Liu et al. (npj Comput. Mater. 2026) and the
uncertainty-aware model distillation (UAMD) loop around it.
"""

__version__ = "0.1.0"
