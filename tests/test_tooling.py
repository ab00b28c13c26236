"""Issue 13: rule tooling you can trust (rules test, CLI parity, rules check, schema pack).

Also issue 11, A4 and A5: control characters in packs and duplicate keys in
profiles, where they reach the command line.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import textwrap
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import backcare
from backcare import Recommender, RuleError
from backcare._cli import _parser, main
from backcare._loader import SCHEMA, default_rules_path

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "profile.json"

CLINIC = """
[[technique]]
id = "hot_stones"
name = "Hot stones"
description = "Smooth heated stones on the back."
pressure = "light"

[[source]]
id = "clinic.protocol"
kind = "convention"
citation = "House protocol"

[[rule]]
id = "clinic.relax"
title = "Hot stones to relax"
when = { goal = "relaxation" }
then = { score = { hot_stones = 4 } }
because = "The clinic offers hot stones to people who come to relax."
source = "clinic.protocol"
evidence = "claim"

[[example]]
name = "relaxation: hot stones first"
profile = { goal = "relaxation" }
expect = { first = "hot_stones", fired = ["clinic.relax"] }

[[example]]
name = "wrong on purpose"
profile = { goal = "relaxation" }
expect = { first = "kneading" }
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def clinic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "my-pack" / "clinic.toml", CLINIC)
    return tmp_path / "my-pack"


# --- 1. rules test never passes silently ----------------------------------------


@pytest.mark.parametrize("spelling", ["my-pack", "my-pack/", "./my-pack", "absolute", "absolute/"])
def test_every_spelling_of_a_pack_runs_its_examples(capsys, clinic, spelling):
    arg = str(clinic) + spelling[len("absolute"):] if spelling.startswith("absolute") else spelling
    code, out, _ = run(capsys, "rules", "test", arg)
    # The trailing slash, ./ and absolute spellings ran 0 examples and passed.
    assert code == 1
    assert "1 passed, 1 failed; rule coverage 100% (1/1 rules fired)" in out


def test_a_named_pack_without_examples_fails_unless_allowed(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bare = write(tmp_path / "bare.toml", CLINIC.split("[[example]]")[0])
    code, out, _ = run(capsys, "rules", "test", "bare.toml")
    assert code == 1 and "no example ran from bare.toml" in out and "--allow-empty" in out
    code, out, _ = run(capsys, "rules", "test", "--allow-empty", "bare.toml")
    assert code == 0 and "0 passed, 0 failed" in out


# --- 2. the default pack's own source is the default pack -----------------------


def test_a_copy_of_the_default_pack_is_the_default_pack(capsys, tmp_path):
    # What a clone holds when backcare is installed from it with `pip install .`:
    # the same rule files in a second place.
    copy = tmp_path / "clone" / "rules"
    shutil.copytree(default_rules_path(), copy)
    code, out, err = run(capsys, "rules", "test", str(copy))
    assert code == 0, err
    assert " 0 failed; rule coverage 100%" in out and "already defined" not in err
    code, out, err = run(capsys, "rules", "check", str(copy) + "/")
    assert code == 0 and out.startswith("ok:"), err
    code, out, err = run(capsys, "recommend", "--rules", str(copy), str(PROFILE))
    assert code == 0, err
    # Changed, it is a pack of its own again, and --no-default tests it alone.
    (copy / "seed.toml").write_text((copy / "seed.toml").read_text() + "\n# edited\n")
    code, _, err = run(capsys, "rules", "check", str(copy))
    assert code == 1 and "already defined" in err
    code, out, err = run(capsys, "rules", "test", "--no-default", str(copy))
    assert code == 0 and "rule coverage 100%" in out, err


# --- 3. parity with the API -------------------------------------------------------


UNSAFE = 'disable = ["safety.low-pressure-tolerance"]\n'


def test_safety_overrides_on_the_command_line(capsys, tmp_path):
    pack = write(tmp_path / "unsafe.toml", UNSAFE)
    code, _, err = run(capsys, "rules", "check", str(pack))
    assert code == 1 and "needs --allow-safety-overrides" in err and "Recommender(" not in err
    code, out, _ = run(capsys, "rules", "check", "--allow-safety-overrides", str(pack))
    assert code == 0 and "warning: safety rule 'safety.low-pressure-tolerance' disabled" in out
    profile = write(tmp_path / "p.json", '{"tight_bands": true, "pressure_tolerance": "low"}')
    code, _, err = run(capsys, "recommend", "--rules", str(pack), str(profile))
    assert code == 2 and "--allow-safety-overrides" in err
    code, out, _ = run(capsys, "recommend", "--allow-safety-overrides", "--rules", str(pack), str(profile))
    assert code == 0 and "WARNING: the rule packs in use changed backcare's safety rules" in out
    code, out, _ = run(capsys, "rules", "test", "--allow-safety-overrides", "--allow-empty", str(pack))
    assert code == 0


def test_no_default_loads_only_the_named_packs(capsys, tmp_path):
    pack = write(tmp_path / "alone.toml", CLINIC.replace('goal = "relaxation"', 'heat = true').replace(
        "[[technique]]", '[[field]]\nname = "heat"\ntype = "bool"\ndescription = "Likes heat."\n\n[[technique]]', 1)
        .split("[[example]]")[0])
    code, out, _ = run(capsys, "rules", "list", "--no-default", "--rules", str(pack))
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["clinic.relax"]
    code, out, _ = run(capsys, "rules", "show", "--no-default", "--rules", str(pack), "clinic.relax")
    assert code == 0 and "House protocol" in out
    code, out, _ = run(capsys, "rules", "check", "--no-default", str(pack))
    assert code == 0 and out.startswith("ok: 1 rules")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"backcare {backcare.__version__}"


def test_every_argument_has_help():
    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{path}: {action.dest}")
        return missing

    assert walk(_parser(), "backcare") == []


@pytest.mark.parametrize("argv", [
    ["rules", "check", "no-such-pack"],
    ["rules", "test", "no-such-pack"],
    ["recommend", "--rules", "no-such-pack", str(PROFILE)],
    ["rules", "list", "--rules", "no-such-pack"],
    ["schema", "profile", "--rules", "no-such-pack"],
])
def test_a_missing_pack_is_bad_input_everywhere(capsys, argv):
    code, out, err = run(capsys, *argv)
    # rules check said 1 here, recommend 2.
    assert code == 2 and not out
    assert err.startswith("backcare: error: ") and err.count("\n") == 1 and "rule pack not found" in err


def test_check_failures_and_input_errors_share_one_prefix(capsys, tmp_path):
    broken = write(tmp_path / "broken.toml", '[[rule]]\nid = "x"\n')
    code, _, err = run(capsys, "rules", "check", str(broken))
    assert code == 1 and err.startswith("backcare: error: ")
    code, _, err = run(capsys, "rules", "show", "no.such-rule")
    assert code == 2 and err.startswith("backcare: error: ")


# --- 4. tests like opa test and pytest ----------------------------------------------


def test_verbose_lists_each_example_and_a_failure_shows_expected_actual_and_fired(capsys, clinic):
    code, out, _ = run(capsys, "rules", "test", "-v", "my-pack")
    assert code == 1
    assert "example 'relaxation: hot stones first' passed" in out
    failure = out[out.index("example 'wrong on purpose' failed"):]
    assert "expected kneading first, got ['hot_stones'" in failure
    assert "rules fired: clinic.relax" in failure
    code, out, _ = run(capsys, "rules", "test", "my-pack")
    assert "hot stones first' passed" not in out and "'wrong on purpose' failed" in out


def test_k_selects_examples_by_name(capsys, clinic):
    code, out, _ = run(capsys, "rules", "test", "-k", "HOT STONES", "my-pack")
    assert code == 0 and "1 passed, 0 failed" in out
    code, out, _ = run(capsys, "rules", "test", "-k", "nothing matches this", "my-pack")
    assert code == 1 and "no example ran from my-pack matching -k" in out


def test_json_report(capsys, clinic):
    code, out, _ = run(capsys, "rules", "test", "--format", "json", "my-pack")
    assert code == 1
    report = json.loads(out)
    assert (report["examples"], report["passed"], report["failed"], report["coverage"]) == (2, 1, 1, 1.0)
    failed = [r for r in report["results"] if r["outcome"] == "failed"]
    assert failed[0]["name"] == "wrong on purpose" and failed[0]["fired"] == ["clinic.relax", "safety.age-not-given", "seed.relaxation-goal"]
    assert failed[0]["file"].endswith("clinic.toml") and failed[0]["line"] == 26


def test_junit_xml_for_ci(capsys, clinic, tmp_path):
    target = tmp_path / "report.xml"
    code, _, _ = run(capsys, "rules", "test", "--junit-xml", str(target), "my-pack")
    assert code == 1
    suite = ET.parse(target).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"relaxation: hot stones first", "wrong on purpose"}
    assert cases["relaxation: hot stones first"].find("failure") is None
    failure = cases["wrong on purpose"].find("failure")
    assert failure is not None and "expected kneading first" in failure.get("message", "")
    assert "rules fired: clinic.relax" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert float(props["rule_coverage"]) == 1.0


def test_min_coverage(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pack = write(tmp_path / "half.toml", CLINIC.split("[[example]]")[0] + """
[[rule]]
id = "clinic.never"
title = "Untested"
when = { stiffness = true }
then = { score = { hot_stones = 1 } }
because = "x"
source = "clinic.protocol"
evidence = "claim"

[[example]]
name = "relax"
profile = { goal = "relaxation" }
expect = { first = "hot_stones" }
""")
    code, out, _ = run(capsys, "rules", "test", str(pack))
    assert code == 0 and "rule coverage 50%" in out
    code, out, _ = run(capsys, "rules", "test", "--min-coverage", "80", str(pack))
    assert code == 1 and "below --min-coverage 80%" in out
    code, _, _ = run(capsys, "rules", "test", "--min-coverage", "50", str(pack))
    assert code == 0
    with pytest.raises(SystemExit) as info:
        main(["rules", "test", "--min-coverage", "120", str(pack)])
    assert info.value.code == 2


# --- 5. rules check catches what only rules test caught -----------------------------


def problems_of(tmp_path: Path, text: str, name: str = "pack.toml") -> list[backcare.Problem]:
    with pytest.raises(RuleError) as info:
        Recommender([write(tmp_path / name, text)])
    return list(info.value.problems)


def test_example_profiles_are_validated_on_load(tmp_path):
    (p,) = problems_of(tmp_path, """
        [[example]]
        name = "weeks as text"
        profile = { pain_weeks = "20" }
        expect = { referral = "none" }
    """)
    assert (p.kind, p.rule_id, p.key, p.line) == ("example", "weeks as text", "profile", 3)
    assert "field 'pain_weeks': expected an integer" in p.message and "got str '20'" in p.message


def test_conditions_that_can_never_hold(tmp_path):
    found = problems_of(tmp_path, """
        [[field]]
        name = "sessions"
        type = "int"
        description = "Sessions so far."
        maximum = 24

        [[rule]]
        id = "clinic.many"
        title = "Many sessions"
        when = { sessions = { ge = 30 } }
        then = { score = { kneading = 1 } }
        because = "x"
        source = "furlan2015"
        evidence = "low"

        [[rule]]
        id = "clinic.typo"
        title = "Typo in a derived value"
        when = { duration = "chornic" }
        then = { score = { kneading = 1 } }
        because = "x"
        source = "furlan2015"
        evidence = "low"

        [[rule]]
        id = "clinic.fine"
        title = "Holds"
        when = { sessions = { ge = 20, lt = 25 }, duration = { in = ["acute", "chronic"] } }
        then = { score = { kneading = 1 } }
        because = "x"
        source = "furlan2015"
        evidence = "low"
    """)
    messages = {p.rule_id: p.message for p in found}
    assert set(messages) == {"clinic.many", "clinic.typo"}
    assert "sessions ≥ 30 can never hold: the field takes an integer <= 24" in messages["clinic.many"]
    assert "did you mean 'chronic'" in messages["clinic.typo"]


def test_a_top_level_key_after_a_table_gets_its_line_and_the_hint(tmp_path):
    (p,) = problems_of(tmp_path, """
        [pack]
        name = "clinic"
        disable = ["seed.toxin-removal"]
    """)
    assert p.line == 3 and p.key == "disable"
    assert "top-level keys go before the first table" in p.message and "[pack]" in p.message


def test_problems_name_their_kind_and_come_sorted_by_file_and_line(tmp_path):
    found = problems_of(tmp_path, """
        [[source]]
        id = "clinic.src"
        kind = "blog"
        citation = "x"

        [[technique]]
        id = "cupping"
        name = "Cupping"
        description = "Cups."
        pressure = "strong"

        [[field]]
        name = "Heat"
        type = "bool"
        description = "x"
    """)
    assert [(p.kind, p.rule_id, p.line) for p in found] == [
        ("source", "clinic.src", 3), ("technique", "cupping", 10), ("field", "Heat", 13)]
    assert "technique 'cupping': key 'pressure'" in str(found[1])


def test_knock_on_problems_fold_into_their_cause(tmp_path):
    found = problems_of(tmp_path, """
        [[technique]]
        id = "cupping"
        name = "Cupping"
        description = "Cups."
        pressure = "strong"

        [[rule]]
        id = "clinic.a"
        title = "a"
        when = { stiffness = true }
        then = { score = { cupping = 1 } }
        because = "x"
        source = "furlan2015"
        evidence = "low"

        [[rule]]
        id = "clinic.b"
        title = "b"
        when = { stiffness = true }
        then = { exclude = { techniques = ["cupping"] } }
        because = "x"
        source = "furlan2015"
        evidence = "low"
        safety = true
    """)
    (p,) = found  # not three: the unknown technique in each rule follows from the first mistake
    assert p.rule_id == "cupping" and "2 more problems elsewhere follow from this one" in p.message


@pytest.mark.parametrize(("text", "hint"), [
    ('[[rule]]\nid = "x"\nsafety = True\n', "lower case: true or false"),
    ('[[rule]]\nid = "x"\nevidence = low\n', "text needs quotes"),
    ('[[rule]]\nid = "x"\nid = "y"\n', "a key is given twice"),
])
def test_toml_syntax_errors_hint_at_the_common_slips(tmp_path, text, hint):
    (p,) = problems_of(tmp_path, text)
    assert p.message.startswith("not valid TOML") and hint in p.message and p.line == 3


# --- 11. schema pack ----------------------------------------------------------------


def rule_files() -> list[Path]:
    return sorted(default_rules_path().glob("*.toml")) + [ROOT / "docs" / "examples" / "clinic-pack" / "clinic.toml"]


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_every_shipped_rule_file_validates_against_the_pack_schema(path):
    from backcare._schema import pack_schema

    schema = pack_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(tomllib.loads(path.read_text(encoding="utf-8")), schema)


def test_the_pack_schema_catches_what_the_loader_refuses():
    from backcare._schema import pack_schema

    validator = jsonschema.Draft202012Validator(pack_schema())
    broken = tomllib.loads((ROOT / "docs" / "examples" / "broken-pack" / "broken.toml").read_text())
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "'anecdote' is not one of" in messages and "'because' is a required property" in messages
    assert not validator.is_valid({"rule": [{"id": "x", "then": {"score": {"kneading": 1e9}}}]})
    assert not validator.is_valid({"technique": [{"id": "x", "name": "a\x1b[2J", "description": "d",
                                                  "pressure": "light"}]})


def test_the_pack_schema_is_generated_from_the_loader_keys(capsys):
    from backcare._schema import pack_schema

    schema = pack_schema()
    for table, keys in SCHEMA.items():
        node = schema["properties"][table]
        node = node.get("items", node)
        assert set(node["properties"]) == set(keys), table
        assert set(node["required"]) == {k for k, spec in keys.items() if spec.required}, table
    code, out, _ = run(capsys, "schema", "pack")
    assert code == 0 and json.loads(out) == schema


# --- issue 11, A4: control characters -----------------------------------------------


ESCAPES = "\\u001b[2J\\u001b[H"  # clear the screen, cursor home: as TOML escapes


def test_control_characters_in_a_pack_are_refused_naming_file_line_and_key(tmp_path):
    (p,) = problems_of(tmp_path, f"""
        [[rule]]
        id = "clinic.note"
        title = "A note"
        when = {{ stiffness = true }}
        then = {{ note = "All clear{ESCAPES}" }}
        because = "x"
        source = "furlan2015"
        evidence = "low"
    """)
    assert (p.file, p.line, p.rule_id, p.key) == (str(tmp_path / "pack.toml"), 5, "clinic.note", "then.note")
    assert "control character U+001B" in p.message
    p, change = problems_of(tmp_path, '[urgency.emergency]\naction = "Fine\\u009b2J"\n', "urgency.toml")
    assert (p.line, p.key, p.kind) == (2, "action", "urgency") and "U+009B" in p.message
    assert "[urgency.emergency] is safety content" in change.message  # and changing it needs the opt-in


def test_escape_sequences_cannot_clear_the_emergency_block(capsys, tmp_path):
    pack = write(tmp_path / "sneaky.toml", f"""
        [[rule]]
        id = "clinic.sneaky"
        title = "Looks harmless"
        when = {{ red_flags = {{ contains = "saddle_anaesthesia" }} }}
        then = {{ note = "{ESCAPES}You are fine, carry on." }}
        because = "x"
        source = "furlan2015"
        evidence = "low"
    """)
    profile = write(tmp_path / "p.json", '{"red_flags": ["saddle_anaesthesia"]}')
    code, out, err = run(capsys, "recommend", "--rules", str(pack), str(profile))
    assert "\x1b" not in out + err
    assert code == 2 and "sneaky.toml:5" in err and "control character" in err


def test_text_output_escapes_control_characters_whatever_their_source():
    import attrs

    result = backcare.recommend({"red_flags": ["saddle_anaesthesia"]})
    note = attrs.evolve(result.referral.rationale[0], text="\x1b[2J\x1b[Hall clear\x9b2J")
    text = attrs.evolve(result, notes=(note,)).explain()
    assert "\x1b" not in text and "\x9b" not in text
    assert "\\x1b[2J\\x1b[Hall clear\\x9b2J" in text and "GET EMERGENCY HELP (emergency referral)" in text


# --- issue 11, A5: duplicate keys ---------------------------------------------------


DUPLICATE = '{"red_flags": ["saddle_anaesthesia"], "red_flags": []}'


def test_duplicate_keys_in_a_profile_file_are_bad_input(capsys, tmp_path):
    profile = write(tmp_path / "dup.json", DUPLICATE)
    code, out, err = run(capsys, "recommend", str(profile))
    # Today the last one wins: the red flag is lost and techniques are listed.
    assert code == 2 and not out
    assert err == f"backcare: error: profile {profile}: key 'red_flags' is given twice; give each field once\n"


def test_duplicate_keys_on_standard_input_are_bad_input(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DUPLICATE.encode())))
    code, out, err = run(capsys, "recommend", "--json", "-")
    assert code == 2 and not out and "key 'red_flags' is given twice" in err


def _number_tests():
    from hypothesis import strategies as st

    from backcare._model import Test

    value = st.one_of(st.integers(-12, 12), st.sampled_from([-2.5, -0.5, 0.5, 1.5, 7.25]))
    single = st.builds(Test, st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), value)
    within = st.builds(lambda vs: Test("in", tuple(vs)), st.lists(value, min_size=1, max_size=3))
    return st.lists(st.one_of(single, within), min_size=1, max_size=3)


def test_never_holds_agrees_with_trying_every_value():
    """The range reasoning behind "can never hold" against brute force over every value that matters."""
    from hypothesis import given
    from hypothesis import strategies as st

    from backcare._loader.checks import _holds, _number_range_holds
    from backcare._profile import FieldSpec

    bound = st.one_of(st.none(), st.integers(-10, 10))

    @given(st.sampled_from(["int", "number"]), bound, bound, _number_tests())
    def check(kind, lo, hi, tests):
        spec = FieldSpec("f", kind, "d", minimum=lo, maximum=hi)
        # Every value where the answer can change, and points between and beyond them.
        marks = sorted({float(v) for t in tests for v in (t.value if isinstance(t.value, tuple) else (t.value,))}
                       | {float(b) for b in (lo, hi) if b is not None})
        points = set(marks) | {m + d for m in marks for d in (-1, -0.25, 0.25, 1)}
        points |= {(a + b) / 2 for a, b in zip(marks, marks[1:])}
        if kind == "int":
            points = set(range(-40, 41))
        accepted = [v for v in points if (lo is None or v >= lo) and (hi is None or v <= hi)]
        assert _number_range_holds(tuple(tests), spec) == any(all(_holds(t, v) for t in tests) for v in accepted)

    check()
