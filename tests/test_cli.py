"""The backcare command: output, JSON Schema conformance, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings

import backcare
from backcare._cli import main
from backcare._schema import profile_schema, result_schema

from .strategies import profiles

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "profile.json"


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_recommend_prints_readable_text(capsys):
    code, out, err = run(capsys, "recommend", str(SAMPLE))
    assert code == 0 and not err
    assert "Recommended techniques, best first" in out and "not medical advice" in out


def test_recommend_json_validates_against_the_result_schema(capsys):
    code, out, _ = run(capsys, "recommend", "--json", str(SAMPLE))
    assert code == 0
    data = json.loads(out)
    code, schema_text, _ = run(capsys, "schema", "result")
    jsonschema.Draft202012Validator.check_schema(json.loads(schema_text))
    jsonschema.validate(data, json.loads(schema_text))
    assert data == backcare.recommend(json.loads(SAMPLE.read_text())).to_dict()


def test_recommend_reads_stdin(capsys, monkeypatch):
    code, out, _ = run(capsys, "recommend", "--json", "-", stdin='{"stiffness": true}', monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out)["techniques"][0]["id"] == "swedish_massage"


@pytest.mark.parametrize(
    ("stdin", "fragment"),
    [
        ('{"tight_band": true}', "did you mean 'tight_bands'"),
        ('{"pain_weeks": "ten"}', "field 'pain_weeks'"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a profile is a JSON object of field names and values, got an array"),
    ],
)
def test_bad_input_exits_2_with_one_line_error(capsys, monkeypatch, stdin, fragment):
    code, out, err = run(capsys, "recommend", "-", stdin=stdin, monkeypatch=monkeypatch)
    assert code == 2 and not out
    assert err.startswith("backcare: error: ") and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_and_bad_usage_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "recommend", str(tmp_path / "nope.json"))
    assert code == 2 and "cannot read profile" in err
    with pytest.raises(SystemExit) as info:
        main(["recommend"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["schema", "profiles"])
    assert info.value.code == 2


def test_rules_list_and_show(capsys):
    code, out, _ = run(capsys, "rules", "list")
    assert code == 0
    listed = [line.split("\t")[0] for line in out.splitlines()]
    assert listed == [r.id for r in backcare.Recommender().rulebase.rules]
    code, out, _ = run(capsys, "rules", "show", "seed.trigger-point-pressure")
    assert code == 0 and "untested: no trial was found" in out and "bands of muscle" in out
    code, _, err = run(capsys, "rules", "show", "seed.trigger-point-presure")
    assert code == 2 and "did you mean 'seed.trigger-point-pressure'" in err


def test_rules_check_and_test(capsys, tmp_path):
    code, out, _ = run(capsys, "rules", "test", str(ROOT / "rules"))
    assert code == 0 and "rule coverage 100%" in out and " 0 failed" in out
    broken = tmp_path / "broken.toml"
    broken.write_text('[[rule]]\nid = "x"\ntitle = "x"\nwhen = { stiffnes = true }\n'
                      'then = { score = { kneading = 1 } }\nbecause = "x"\nsource = "furlan2015"\nevidence = "low"\n')
    code, out, err = run(capsys, "rules", "check", str(broken))
    assert code == 1 and "did you mean 'stiffness'" in err
    failing = tmp_path / "failing.toml"
    failing.write_text('[[example]]\nname = "wrong on purpose"\nprofile = { stiffness = true }\n'
                       'expect = { first = "deep_pressure" }\n')
    code, out, _ = run(capsys, "rules", "test", str(failing))
    assert code == 1 and "wrong on purpose" in out and "1 failed" in out


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "backcare"
    proc = subprocess.run([str(exe), "recommend", "--json", str(SAMPLE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["disclaimer"] == backcare.DISCLAIMER


@settings(max_examples=100)
@given(profiles())
def test_schemas_accept_every_valid_profile_and_its_result(profile):
    rec = backcare.Recommender()
    jsonschema.validate(profile, profile_schema(rec.fields))
    jsonschema.validate(rec.recommend(profile).to_dict(), result_schema())


@pytest.mark.parametrize("bad", [{"tight_band": True}, {"pain_weeks": -1}, {"goal": "relax"},
                                 {"red_flags": ["nightpain"]}, {"stiffness": 1}])
def test_profile_schema_rejects_what_the_validator_rejects(bad):
    rec = backcare.Recommender()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, profile_schema(rec.fields))
    with pytest.raises(backcare.ProfileError):
        rec.recommend(bad)
