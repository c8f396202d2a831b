"""`compute_properties(model, elements, settings)`: every requested property of every element, each a value or
"not computable" with its reason, never an exception: what `alloop properties` prints and the campaign stores."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from alloop.properties import bulk, defects, elastic, gsfe, mixing, surfaces
from alloop.properties.model import PropertyModel
from alloop.properties.results import PROPERTIES, ElementProperties, MixingEnergy, NotComputable, PropertyResult, Value
from alloop.properties.settings import PropertySettings

log = logging.getLogger("alloop")
Progress = Callable[[str], None]


def _names(group: str, structure: str) -> list[str]:
    if group == "interstitials":
        return list(defects.INTERSTITIALS[structure])
    if group == "gsfe":
        return [f"usf_{p}" for p in gsfe.PLANES[structure]] + (["isf_111"] if structure == "fcc" else [])
    return [k for k, (_, _, g) in PROPERTIES.items() if g == group and k != "cohesive_energy"]


def compute_properties(model: PropertyModel, elements: Sequence[str], settings: PropertySettings,
                       progress: Progress | None = None) -> PropertyResult:
    say = progress or (lambda _msg: None)
    start, cpu = time.perf_counter(), time.process_time()
    groups = ["lattice"] + [g for g in settings.properties if g != "lattice"]
    per_element, lattices = [], {}
    for el in elements:
        props, lat = _element(model, el, groups, settings, say)
        per_element.append(props)
        if lat is not None:
            lattices[el] = lat
    mixed = _mixing(model, elements, lattices, settings, say) if "mixing" in groups and len(elements) > 1 else []
    return PropertyResult(model=model.name, kind=model.kind, elements=list(elements), property_set=groups,  # type: ignore[arg-type]
                          per_element=per_element, mixing=mixed, seconds=round(time.perf_counter() - start, 2),
                          cpu_seconds=round(time.process_time() - cpu, 2), settings=settings.model_dump(mode="json", exclude={"enabled", "teacher"}))


def _element(model: PropertyModel, el: str, groups: list[str], settings: PropertySettings,
             say: Progress) -> tuple[ElementProperties, bulk.Lattice | None]:
    """One element's properties, and its lattice when the crystal is a stable minimum of the model."""
    structure, a_start = bulk.crystal_of(el)
    props = ElementProperties(element=el, structure=structure)
    dependent = [k for g in groups if g not in ("lattice", "mixing") for k in _names(g, structure)]

    def everything(reason: str, after: str | None = None, **saddle: float) -> tuple[ElementProperties, None]:
        """Every property missing: the lattice ones for `reason`, those that need the lattice for `after`."""
        props.values.update({"lattice_constant": Value.missing(reason, **({"saddle_point": saddle["a0"]} if saddle else {})),
                             "bulk_modulus": Value.missing(reason, **({"saddle_point": saddle["B"]} if saddle else {}))})
        props.values.update({k: Value.missing(after or reason) for k in ["cohesive_energy", *dependent]})
        say(f"{el}: {reason}")
        return props, None

    if model.elements is not None and el not in model.elements:
        return everything(f"{model.name} has no {el}")
    t = time.perf_counter()
    try:
        lat = bulk.equation_of_state(model, el, structure, a_start)
    except NotComputable as exc:
        return everything(str(exc), f"needs the lattice constant, which is not computable: {exc}")
    except Exception as exc:  # the model itself failed on the bulk cells
        log.warning("E–V curve of %s with %s failed", el, model.name, exc_info=True)
        return everything(f"{type(exc).__name__}: {exc}")
    props.eos = lat.curve
    try:
        bulk.check_stable(model, el, lat, settings.fmax, settings.max_steps)
    except NotComputable as exc:
        # the E–V minimum of a crystal that falls apart is a saddle point: its a0, B and the rest mean nothing
        return everything(str(exc), a0=round(lat.a0, 5), B=round(lat.bulk_modulus, 3))
    # a hole at strong compression is kept with the value: the crystal's minimum is real, the hole is a warning
    props.values["lattice_constant"] = Value.of(lat.a0, **(lat.hole or {}))
    if lat.hole:
        say(f"{el}: the E–V curve falls {lat.hole['hole_depth_eV_per_atom']:.3g} eV/atom below the crystal's minimum "
            f"at a = {lat.hole['hole_at_a']:.3f} Å: the potential has a hole there")
    props.values["bulk_modulus"] = Value.of(lat.bulk_modulus)
    atom = settings.atom_energies.get(el)
    if atom is None and hasattr(model, "atom_energy"):
        atom = model.atom_energy(el)
    props.values["cohesive_energy"] = _guarded(lambda: Value.of(bulk.cohesive_energy(lat, atom, el)))
    say(f"{el}: a0 = {lat.a0:.4f} Å, B = {lat.bulk_modulus:.0f} GPa ({time.perf_counter() - t:.1f} s)")
    for group in groups[1:]:
        if group == "mixing":
            continue
        t = time.perf_counter()
        props.values.update(_above_crystal(_group(group, model, el, lat, settings, props)))
        shown = ", ".join(f"{k} {v.value:.4g}" if v.ok else f"{k} —" for k, v in props.values.items() if k in _names(group, structure))
        say(f"{el}: {group}: {shown} ({time.perf_counter() - t:.1f} s)")
    return props, lat


def _group(group: str, model: PropertyModel, el: str, lat: bulk.Lattice, s: PropertySettings,
           props: ElementProperties) -> dict[str, Value]:
    names = _names(group, lat.structure)
    try:
        if group == "elastic":
            c = elastic.elastic_constants(model, el, lat)
            return {"C11": Value.of(c.C11), "C12": Value.of(c.C12), "C44": Value.of(c.C44)}
        if group == "vacancy":
            return {"vacancy": defects.vacancy(model, el, lat, s.defect_cells, s.fmax, s.max_steps)}
        if group == "interstitials":
            return defects.interstitials(model, el, lat, s.defect_cells, s.fmax, s.max_steps)
        if group == "surfaces":
            return surfaces.surface_energies(model, el, lat, s.fmax, s.max_steps)
        if group == "gsfe":
            values, curves = gsfe.gamma_lines(model, el, lat, s.fmax, s.max_steps)
            props.gsfe = curves
            return values
    except NotComputable as exc:
        return {k: Value.missing(str(exc)) for k in names}
    except Exception as exc:  # the model failed in a way alloop does not know: this group says so, the rest stands
        log.warning("%s of %s with %s failed", group, el, model.name, exc_info=True)
        return {k: Value.missing(f"{type(exc).__name__}: {exc}") for k in names}
    raise ValueError(f"unknown property group {group!r}")


# Formation, surface and fault energies below zero: the relaxed defect is lower than the perfect crystal, which
# is then not this potential's ground state, and no such energy means anything.
_ABOVE_CRYSTAL = {"vacancy", "sia_111", "sia_110", "crowdion", "sia_100", "sia_octahedral", "surface_100", "surface_110",
                  "surface_111", "usf_110", "usf_112", "usf_111"}


def _above_crystal(values: dict[str, Value]) -> dict[str, Value]:
    out = {}
    for k, v in values.items():
        if k in _ABOVE_CRYSTAL and v.ok and v.value < 0:  # type: ignore[operator]
            v = Value.missing(f"the relaxed cell is {-v.value:.3g} {PROPERTIES[k][1]} below the perfect crystal, which is "  # type: ignore[operator]
                              "then not this potential's ground state", **v.details)
        out[k] = v
    return out


def _guarded(compute: Callable[[], Value]) -> Value:
    try:
        return compute()
    except NotComputable as exc:
        return Value.missing(str(exc))


def _mixing(model: PropertyModel, elements: Sequence[str], lattices: dict[str, bulk.Lattice], s: PropertySettings,
            say: Progress) -> list[MixingEnergy]:
    rng = np.random.default_rng(s.seed)
    out = []
    for comp in mixing.compositions(elements):
        t = time.perf_counter()
        missing = [el for el in comp if el not in lattices]
        if missing:
            out.append(MixingEnergy(composition=comp, value=Value.missing(
                f"needs the lattice constant of {', '.join(missing)}, which is not computable")))
            continue
        try:
            out.append(mixing.mixing_energy(model, comp, lattices, s.mixing_cells, s.mixing_samples, rng, s.fmax, s.max_steps))
        except NotComputable as exc:
            out.append(MixingEnergy(composition=comp, value=Value.missing(str(exc))))
        except Exception as exc:
            log.warning("mixing energy of %s with %s failed", comp, model.name, exc_info=True)
            out.append(MixingEnergy(composition=comp, value=Value.missing(f"{type(exc).__name__}: {exc}")))
        v = out[-1].value
        say(f"mixing {'-'.join(comp)}: {f'{v.value:.1f} meV/atom' if v.ok else '—'} ({time.perf_counter() - t:.1f} s)")
    return out
