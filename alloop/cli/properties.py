"""`alloop properties POTENTIAL [-e ENSEMBLE --reference MEMBER] [--json] [--plots DIR]` or
`alloop properties CAMPAIGN.yaml`: what a potential predicts, beside its teacher and the published DFT values."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alloop.errors import AlloopError, ConfigError

if TYPE_CHECKING:
    from alloop.properties import PropertySettings


def add_parser(sub: argparse._SubParsersAction) -> None:
    from alloop.properties.settings import ALL_GROUPS, CAMPAIGN_GROUPS

    p = sub.add_parser(
        "properties",
        help="physical properties of a potential (a0, E–V, C_ij, defects, surfaces, γ-lines, mixing) beside its teacher and DFT",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Compute what an ACE potential predicts for each of its elements (bcc and fcc): the E–V curve with the\n"
            "equilibrium lattice constant and bulk modulus (ASE's Birch–Murnaghan fit), C11, C12 and C44 (energies of\n"
            "volume-conserving strains), the vacancy and self-interstitial formation energies (bcc: ⟨111⟩ and ⟨110⟩\n"
            "dumbbells, crowdion; relaxed, at zero pressure, in a 128-atom cell by default), the (100), (110) and (111)\n"
            "surface energies (relaxed slabs), the unstable stacking-fault energies of the γ-lines along ⟨111⟩ on {110}\n"
            "and {112} (relaxed along the normal), and for alloys the energy of mixing of random solid solutions. The\n"
            "cohesive energy only with --atom-energy (a potential has no isolated-atom reference of its own).\n\n"
            "Each is shown next to the teacher's (-e ENSEMBLE --reference MEMBER: a uMLIP member computed the same way)\n"
            "and the published DFT value shipped with alloop (alloop/properties/data/reference.yaml, with its source),\n"
            "with the deviation from both. A property the potential cannot give (no minimum on the E–V curve, a\n"
            "relaxation that does not converge, atoms that collapse) is shown as n/c with the reason.\n\n"
            "With a campaign file: the properties of each of the campaign's potentials and of its label member (the\n"
            "teacher), read from the campaign database where the loop stored them, the missing ones computed and stored\n"
            "(the same computation the loop runs after each fit, with the campaign's `properties:` settings).\n\n"
            "examples:\n"
            "  alloop properties run/iter_001/fit/output_potential.yaml -e offline-fast --reference 7net-0\n"
            "  alloop properties -e offline-fast --reference 7net-0          # the teacher alone, against DFT\n"
            "  alloop properties examples/w-quickstart/campaign.yaml --plots props/\n"
            "  alloop properties pot.yaml --properties lattice elastic --json"
        ),
    )
    p.add_argument("target", nargs="?", help="ACE potential (pacemaker .yaml), or a campaign YAML file")
    p.add_argument("-e", "--ensemble", help="built-in ensemble name or ensemble YAML that holds the teacher")
    p.add_argument("--reference", metavar="MEMBER", help="the teacher: a member of ENSEMBLE (default: its energy member)")
    p.add_argument("--elements", nargs="+", metavar="EL", help="elements to compute (default: the potential's or the campaign's)")
    p.add_argument("--properties", nargs="+", choices=ALL_GROUPS, metavar="GROUP",
                   help=f"property groups: {', '.join(ALL_GROUPS)} (default: all; a campaign: its settings, "
                        f"normally {', '.join(CAMPAIGN_GROUPS)})")
    p.add_argument("--cells", type=int, metavar="N", help="cubic cells per edge of the point-defect cells (default 4: 128 bcc atoms)")
    p.add_argument("--atom-energy", nargs="+", default=[], metavar="EL=EV",
                   help="isolated-atom energy on the potential's scale, for the cohesive energy")
    p.add_argument("--json", action="store_true", help="print the results, the comparison rows and the DFT sources as JSON")
    p.add_argument("--plots", metavar="DIR", help="write the E–V curves and γ-lines as PNG figures into DIR")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        out = _campaign(args) if args.target and _is_campaign(args.target) else _single(args)
    except AlloopError as exc:
        _say(f"alloop properties: {exc}")
        return 2
    print(out)
    return 0


def _is_campaign(path: str) -> bool:
    import yaml

    p = Path(path)
    if not p.is_file():
        return False
    if p.stat().st_size > 1_000_000:  # potentials are big; a campaign file is a page
        return False
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "elements" in data and "name" in data


def _settings(args: argparse.Namespace, base: PropertySettings | None = None) -> PropertySettings:
    from alloop.properties import ALL_GROUPS, PropertySettings

    s = base.model_copy() if base is not None else PropertySettings(properties=list(ALL_GROUPS))
    update: dict[str, Any] = {}
    if args.properties:
        update["properties"] = list(args.properties)
    if args.cells:
        update["defect_cells"] = args.cells
    energies = dict(s.atom_energies)
    for item in args.atom_energy:
        el, _, value = item.partition("=")
        try:
            energies[el.strip()] = float(value)
        except ValueError:
            raise ConfigError([f"--atom-energy {item!r}: give EL=EV, e.g. W=-4.57"], "command line") from None
    update["atom_energies"] = energies
    return PropertySettings.model_validate({**s.model_dump(), **update})


def _teacher_spec(args: argparse.Namespace) -> Any:
    if args.ensemble is None:
        if args.reference is not None:
            raise ConfigError(["--reference needs -e ENSEMBLE (the ensemble the member is in)"], "command line")
        return None
    from alloop.ensemble import label_members, resolve_ensemble

    ens = resolve_ensemble(args.ensemble)
    name = args.reference or label_members(ens)[0]
    return ens.member(name)


def _compute(model: Any, elements: list[str], settings: Any, what: str) -> Any:
    from alloop.properties import compute_properties

    _say(f"{what}: {', '.join(settings.properties)} for {', '.join(elements)}")
    res = compute_properties(model, elements, settings, progress=lambda m: _say(f"  {m}"))
    _say(f"{what}: {res.seconds:.1f} s ({res.cpu_seconds:.1f} s of CPU)")
    return res


def _single(args: argparse.Namespace) -> str:
    from alloop.properties import load_model

    settings = _settings(args)
    spec = _teacher_spec(args)
    if args.target is None and spec is None:
        raise ConfigError(["give a potential, a campaign file, or -e ENSEMBLE [--reference MEMBER] for a uMLIP alone"],
                          "command line")
    potential = load_model(potential=args.target) if args.target else None
    teacher_model = load_model(member=spec) if spec is not None else None
    elements = list(args.elements or (potential.elements if potential is not None else []))
    if not elements:  # a uMLIP knows most of the periodic table: say which elements
        raise ConfigError([f"give --elements for {spec.name} alone (e.g. --elements W)"], "command line")
    teacher = _compute(teacher_model, elements, settings, f"teacher {spec.name}") if teacher_model is not None else None
    main = _compute(potential, elements, settings, f"potential {args.target}") if potential is not None else None
    shown, beside = (main, teacher) if main is not None else (teacher, None)
    return _output(args, shown, beside)


def _output(args: argparse.Namespace, result: Any, teacher: Any, extra: dict[str, Any] | None = None) -> str:
    from alloop.properties.reference import reference_table
    from alloop.properties.table import comparison_rows, format_table

    if args.plots:
        from alloop.report.property_plots import property_figures

        shown = {"potential" if result.kind != "member" else result.model: result}
        if teacher is not None:
            shown["teacher"] = teacher
        for path in property_figures(shown, Path(args.plots)):
            _say(f"wrote {path}")
    if args.json:
        rows = comparison_rows(result, teacher)
        table = reference_table()
        used = sorted({r["dft_source"] for r in rows if r["dft_source"]})
        return json.dumps({"result": result.model_dump(mode="json"),
                           "teacher": None if teacher is None else teacher.model_dump(mode="json"),
                           "comparison": rows, "dft_sources": {k: table.sources[k].model_dump() for k in used},
                           **(extra or {})}, indent=1)
    return format_table(result, teacher)


def _campaign(args: argparse.Namespace) -> str:
    from alloop.config import load_campaign
    from alloop.controller.tasks import properties_task
    from alloop.ensemble import label_members, resolve_ensemble
    from alloop.properties import PropertyResult
    from alloop.properties.settings import fingerprint
    from alloop.properties.table import trend_table
    from alloop.state import Store
    from alloop.errors import StateError

    campaign = load_campaign(args.target)
    if not campaign.database_path.is_file():
        raise StateError(f"no campaign database at {campaign.database_path}: run `alloop run {args.target}` first")
    settings = _settings(args, campaign.properties)
    fp = fingerprint(settings)
    ens = resolve_ensemble(campaign.ensemble, check_files=False)
    teacher_name = args.reference or label_members(ens, campaign.labels.energy_member, campaign.labels.force_member)[0]
    elements = list(args.elements or campaign.elements)
    store = Store.open_existing(campaign.database_path)
    try:
        cid = int(store.campaign(campaign.name)["id"])
        pots = store.potential_table(cid)
        if not pots["path"]:
            raise StateError(f"campaign '{campaign.name}' has no potential yet")
        jobs = [("potential", int(i), p, p) for i, p in zip(pots["iteration_idx"], pots["path"])]
        final = store.final_potential(cid)
        if final is not None and final["path"] is not None:
            jobs.append(("final", int(final["iteration_idx"]), final["path"], final["path"]))
        if settings.teacher or args.reference:
            jobs.append(("teacher", None, teacher_name, ens.member(teacher_name)))
        results: dict[tuple[str, int | None], PropertyResult] = {}
        for subject, it, name, target in jobs:
            stored = store.property_result(cid, subject, name, fp)
            if stored is None:
                what = {"potential": f"iteration {it} potential {name}", "final": f"final potential {name}"}.get(subject, f"teacher {name}")
                _say(f"{what}: computing {', '.join(settings.properties)}")
                t = time.perf_counter()
                stored = properties_task(target, elements, settings)
                store.save_property_result(cid, subject, it, name, fp, stored)
                _say(f"{what}: {time.perf_counter() - t:.1f} s (stored in {campaign.database_path})")
            results[(subject, it)] = PropertyResult.model_validate(stored)
    finally:
        store.close()
    teacher = results.pop(("teacher", None), None)
    final_result = next((results.pop(k) for k in list(results) if k[0] == "final"), None)
    by_iteration = {it: r for (_, it), r in sorted(results.items(), key=lambda kv: kv[0][1])}
    latest = final_result if final_result is not None else by_iteration[max(by_iteration)]
    extra = {"iterations": {str(i): r.model_dump(mode="json") for i, r in by_iteration.items()},
             **({"final": final_result.model_dump(mode="json")} if final_result is not None else {})}
    text = _output(args, latest, teacher, extra)
    if args.json:
        return text
    which = "the final potential" if final_result is not None else f"the latest potential (iteration {max(by_iteration)})"
    return (f"campaign {campaign.name}: {which}\n{text}\n\n"
            f"over the iterations' potentials:\n{trend_table(by_iteration, teacher)}")
