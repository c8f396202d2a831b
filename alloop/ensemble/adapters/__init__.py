"""One adapter per uMLIP family; each exposes `load(spec, device) -> Member` and imports its
library only when called (see alloop.ensemble.kinds for the registry)."""
