"""Heterogeneous uMLIP ensemble: describe members (`MemberSpec`, `EnsembleSpec`, `resolve_ensemble`),
load them behind one interface (`load_member` -> `Member.predict`), and run them (`predict_member`,
`predict_ensemble`). Importing this package loads no uMLIP library and no torch; each adapter
imports its library when its member is first loaded.
"""

from alloop.ensemble.loading import load_member, unload_all
from alloop.ensemble.members import Member
from alloop.ensemble.predict import predict_ensemble, predict_member
from alloop.ensemble.results import EnsemblePredictions, MemberPredictions
from alloop.ensemble.spec import (
    EnsembleSpec,
    MemberSpec,
    builtin_names,
    check_elements,
    label_members,
    resolve_ensemble,
)

__all__ = [
    "EnsemblePredictions",
    "EnsembleSpec",
    "Member",
    "MemberPredictions",
    "MemberSpec",
    "builtin_names",
    "check_elements",
    "label_members",
    "load_member",
    "predict_ensemble",
    "predict_member",
    "resolve_ensemble",
    "unload_all",
]
