"""`alloop validate`: every problem in a campaign file is reported with its field path and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alloop.cli import main
from alloop.config import load_campaign
from alloop.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "w-quickstart" / "campaign.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "campaign.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_the_quickstart_campaign_is_valid(capsys):
    assert main(["validate", str(QUICKSTART)]) == 0
    assert "OK" in capsys.readouterr().out


def test_paths_resolve_against_the_campaign_file(tmp_path):
    c = load_campaign(_write(tmp_path, "name: w\nelements: [W]\nensemble: offline-fast\nworkdir: out\n"))
    assert c.workdir == (tmp_path / "out").resolve()
    assert c.database_path == c.workdir / "alloop.db"


def test_unknown_keys_are_errors_with_their_line(tmp_path, capsys):
    p = _write(
        tmp_path,
        """\
        name: w
        elements: [W]
        ensemble: offline-fast
        uncertainty:
          u_c: 1.0
          u_cc: 2.0
        selection:
          budget: -3
        """,
    )
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert "uncertainty.u_cc (line 6): unknown key" in err
    assert "selection.budget (line 8)" in err


def test_malformed_yaml_names_the_line(tmp_path):
    p = _write(tmp_path, "name: w\nelements: [W\nensemble: offline\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: malformed YAML"):
        load_campaign(p)


def test_missing_required_fields_and_unknown_elements(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_campaign(_write(tmp_path, "elements: [W, Xx]\nensemble: offline-fast\n"))
    text = str(exc.value)
    assert "name: required field is missing" in text
    assert "elements (line 1): unknown element(s) ['Xx']" in text


def test_unknown_ensemble_and_label_member(tmp_path):
    with pytest.raises(ConfigError, match="ensemble .line 3."):
        load_campaign(_write(tmp_path, "name: w\nelements: [W]\nensemble: no-such-ensemble\n"))
    with pytest.raises(ConfigError, match=r"labels.energy_member \(line 5\): 'nope' is not a member"):
        load_campaign(_write(tmp_path, "name: w\nelements: [W]\nensemble: offline-fast\nlabels:\n  energy_member: nope\n"))


def test_backend_sections_are_required_for_their_backend(tmp_path):
    with pytest.raises(ConfigError, match="needs a 'vasp:' section"):
        load_campaign(_write(tmp_path, "name: w\nelements: [W]\nensemble: offline-fast\nlabels:\n  dft:\n    backend: vasp\n"))


def test_help_answers_for_every_command(capsys):
    for cmd in ("run", "validate", "status", "score", "weights", "evaluate"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: alloop " + cmd in capsys.readouterr().out


def test_campaign_file_changes_are_classified_by_what_they_would_contradict():
    import json

    from alloop.config import Campaign, config_changes

    before = Campaign(name="w", elements=["W"])
    after = before.model_copy(update={
        "max_iterations": 9,
        "uncertainty": before.uncertainty.model_copy(update={"u_c": 0.5}),
        "convergence": before.convergence.model_copy(update={"patience": 3}),
    })
    changes = {ch.field: ch for ch in config_changes(before.model_dump_json(), after)}
    assert set(changes) == {"max_iterations", "uncertainty.u_c", "convergence.patience"}
    assert changes["uncertainty.u_c"].binding and changes["uncertainty.u_c"].old == 1.0
    assert not changes["max_iterations"].binding and not changes["convergence.patience"].binding
    # a database written before a setting existed: the new setting at its default is no change
    older = json.loads(before.model_dump_json())
    del older["labels"]["energy_reference"]
    assert config_changes(json.dumps(older), before) == []


def test_a_backends_settings_bind_only_while_it_labels_and_guard_settings_never():
    from alloop.config import Campaign, config_changes

    before = Campaign.model_validate({"name": "w", "elements": ["W"], "labels": {"energy_reference": {"method": "none"}, "dft": {"backend": "replay", "replay": {"sources": ["x.npz"]}}}})
    dft = before.labels.dft
    after = before.model_copy(update={
        "labels": before.labels.model_copy(update={"dft": dft.model_copy(update={"gpaw": dft.gpaw.model_copy(update={"ecut": 999.0})})}),
        "guard": before.guard.model_copy(update={"max_dft_share_without_u": 0.5}),
    })
    changes = {ch.field: ch for ch in config_changes(before.model_dump_json(), after)}
    assert set(changes) == {"labels.dft.gpaw.ecut", "guard.max_dft_share_without_u"}
    assert not any(ch.binding for ch in changes.values())  # gpaw labels nothing here; the guard only steers
    # the same gpaw change binds where gpaw is the backend
    gpaw = Campaign(name="w", elements=["W"])
    moved = gpaw.model_copy(update={"labels": gpaw.labels.model_copy(update={"dft": gpaw.labels.dft.model_copy(
        update={"gpaw": gpaw.labels.dft.gpaw.model_copy(update={"ecut": 999.0})})})})
    assert [ch.binding for ch in config_changes(gpaw.model_dump_json(), moved)] == [True]


def test_only_keys_the_file_does_not_write_keep_their_stored_value(tmp_path):
    import json

    from alloop.config import Campaign, config_changes, keep_stored_values

    campaign = load_campaign(_write(tmp_path, "name: w\nelements: [W]\nensemble: offline-fast\nlabels: {dft: {gpaw: {maxiter: 300}}}\n"))
    assert campaign.writes("labels.dft.gpaw.maxiter") and campaign.writes("labels.dft") and not campaign.writes("labels.dft.gpaw.ecut")
    stored = json.loads(campaign.model_dump_json())
    stored["labels"]["dft"]["gpaw"]["ecut"] = 123.0  # an older default: the labels were made with it
    stored["labels"]["dft"]["gpaw"]["maxiter"] = 250  # the user's edit
    kept_campaign, kept = keep_stored_values(json.dumps(stored), campaign)
    assert [(ch.field, ch.old, ch.new) for ch in kept] == [("labels.dft.gpaw.ecut", 123.0, campaign.labels.dft.gpaw.ecut)]
    assert kept_campaign.labels.dft.gpaw.ecut == 123.0 and kept_campaign.writes("labels.dft.gpaw.maxiter")
    changes = config_changes(json.dumps(stored), kept_campaign)
    assert [(ch.field, ch.binding, ch.default_changed) for ch in changes] == [("labels.dft.gpaw.maxiter", True, False)]
    # a campaign built in code writes every key: nothing is kept, everything shows
    built = Campaign.model_validate(json.loads(campaign.model_dump_json()))
    assert keep_stored_values(json.dumps(stored), built)[1] == []
    # an old value this alloop no longer accepts is an error that says what to do
    stored["labels"]["dft"]["gpaw"]["ecut"] = -5.0
    with pytest.raises(ConfigError, match="labels.dft.gpaw.ecut: the campaign was run with -5.0"):
        keep_stored_values(json.dumps(stored), campaign)
