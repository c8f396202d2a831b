"""The defect genome: grain boundaries, dislocations, crack tips, stacking faults, surfaces, point-defect
clusters, dimers and trimers, each decorated across the composition space by max volume
(`generate.genome` in the campaign file; see alloop.generate.genome.settings).

One small module per family builds geometry on a placeholder species; `candidates.genome_candidates`
decorates and collects them. Importing this package is cheap: pymatgen, matscipy and pyace load inside
the builders that use them.
"""

from alloop.generate.genome.settings import DecorationSettings, ElasticConstants, GenomeSettings, GrainBoundarySpec

__all__ = ["DecorationSettings", "ElasticConstants", "GenomeSettings", "GrainBoundarySpec"]
