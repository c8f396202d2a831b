"""Campaign state in SQLite: the single source of truth the controller resumes from."""

from alloop.state.store import (
    DFTJob,
    NewConfiguration,
    Prediction,
    Routing,
    Store,
    StoredConfiguration,
    TrainingRow,
    from_blob,
    to_blob,
)

__all__ = [
    "DFTJob",
    "NewConfiguration",
    "Prediction",
    "Routing",
    "Store",
    "StoredConfiguration",
    "TrainingRow",
    "from_blob",
    "to_blob",
]
