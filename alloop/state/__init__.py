"""Campaign state in SQLite: the single source of truth the controller resumes from.

`Store` (store.py) is the loop's writer; `ReadOnlyStore` (queries.py) what the commands that only read open;
the rows both exchange are in records.py, the sweep's table in sweeps.py."""

from alloop.state.queries import ReadOnlyStore
from alloop.state.records import (
    DFTJob,
    NewConfiguration,
    Prediction,
    Routing,
    StoredConfiguration,
    TrainingRow,
    from_blob,
    to_blob,
)
from alloop.state.store import Store

__all__ = [
    "DFTJob",
    "NewConfiguration",
    "Prediction",
    "ReadOnlyStore",
    "Routing",
    "Store",
    "StoredConfiguration",
    "TrainingRow",
    "from_blob",
    "to_blob",
]
