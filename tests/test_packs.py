"""Issue 5: rule packs, validation with clear errors, tests inside rule files."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import pytest

import backcare
from backcare import Recommender, RuleError
from backcare._loader import MAX_SHARED_PATTERN, default_rules_path

SRC = Path(backcare.__file__).parent


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


HOT_STONES = """
[[field]]
name = "cold_sensitive"
type = "bool"
description = "Muscles tighten in the cold."

[[technique]]
id = "hot_stones"
name = "Hot stone massage"
description = "Warm smooth stones glided over the back."
pressure = "moderate"

[[source]]
id = "clinic.protocol"
kind = "convention"
citation = "Our clinic's house protocol, 2026"

[[rule]]
id = "clinic.warmth"
title = "Warmth for cold-sensitive muscles"
when = { cold_sensitive = true }
then = { score = { hot_stones = 10 } }
because = "Muscles that tighten in the cold relax with warmth."
source = "clinic.protocol"
evidence = "low"

[[example]]
name = "cold sensitive: hot stones first"
profile = { cold_sensitive = true, stiffness = true }
expect = { first = "hot_stones", fired = ["clinic.warmth"] }
"""


def test_pack_adds_field_technique_and_rule_without_touching_the_default(tmp_path):
    pack = write(tmp_path / "clinic.toml", HOT_STONES)
    profile = {"stiffness": True, "cold_sensitive": True}
    before = backcare.recommend({"stiffness": True}).to_json()

    rec = Recommender([pack])
    result = rec.recommend(profile)
    assert result.techniques[0].id == "hot_stones"
    assert result.techniques[0].rationale[0].citation == "Our clinic's house protocol, 2026"
    assert "cold_sensitive" in rec.fields

    assert backcare.recommend({"stiffness": True}).to_json() == before
    with pytest.raises(backcare.ProfileError, match="unknown profile field 'cold_sensitive'"):
        backcare.recommend(profile)
    with pytest.raises(backcare.ProfileError, match="cold_sensitive"):
        rec.recommend({"cold_sensitive": "yes"})


def test_replacing_a_rule_by_id_changes_its_effect(tmp_path):
    pack = write(tmp_path / "cutoffs.toml", """
        [[rule]]
        id = "duration.chronic"
        replace = true
        title = "Pain for more than 26 weeks is chronic"
        when = { pain_weeks = { gt = 26 } }
        then = { derive = { duration = "chronic" } }
        because = "Our clinic uses six months."
        source = "qaseem2017"
        evidence = "guideline"
    """)
    assert backcare.recommend({"pain_weeks": 20}).facts["duration"] == ("chronic",)
    rec = Recommender([pack])
    assert "duration" not in rec.recommend({"pain_weeks": 20}).facts
    assert rec.recommend({"pain_weeks": 27}).facts["duration"] == ("chronic",)


def test_redefining_without_replace_is_an_error(tmp_path):
    pack = write(tmp_path / "dup.toml", """
        [[rule]]
        id = "duration.chronic"
        title = "x"
        when = { pain_weeks = { gt = 26 } }
        then = { derive = { duration = "chronic" } }
        because = "x"
        source = "qaseem2017"
        evidence = "guideline"
    """)
    with pytest.raises(RuleError, match="already defined at .*add replace = true"):
        Recommender([pack])


def test_disabling_a_rule_removes_it(tmp_path):
    pack = write(tmp_path / "off.toml", 'disable = ["seed.rubbing-feels-good"]\n')
    result = Recommender([pack]).recommend({"pain_weeks": 2})
    assert "seed.rubbing-feels-good" not in result.fired
    assert "light_stroking" not in [t.id for t in result.techniques]
    with pytest.raises(RuleError, match="cannot disable unknown rule 'seed.rubing-feels-good'.*did you mean"):
        Recommender([write(tmp_path / "typo.toml", 'disable = ["seed.rubing-feels-good"]\n')])


def test_safety_rules_need_the_opt_in_to_be_disabled_or_replaced(tmp_path):
    pack = write(tmp_path / "unsafe.toml", 'disable = ["contraindication.anticoagulants"]\n')
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    assert "contraindication.anticoagulants" in str(info.value)
    assert "allow_safety_overrides=True" in str(info.value)

    rec = Recommender([pack], allow_safety_overrides=True)
    result = rec.recommend({"scar_tissue": True, "conditions": ["anticoagulants"]})
    assert "deep_pressure" in [t.id for t in result.techniques]
    assert result.safety_overrides and "contraindication.anticoagulants" in result.safety_overrides[0]
    assert "WARNING: the rule packs in use changed backcare's safety rules" in result.explain()
    assert result.to_dict()["provenance"]["safety_overrides"] == list(result.safety_overrides)

    replace = write(tmp_path / "replace.toml", """
        [[red_flag]]
        id = "night_pain"
        replace = true
        description = "Night pain"
        suspected = "nothing much"
        urgency = "routine"
        source = "nhs-cks"
    """)
    with pytest.raises(RuleError, match="red-flag.night_pain.*safety rule"):
        Recommender([replace])


def test_one_error_lists_every_problem_with_file_rule_and_suggestion(tmp_path):
    pack = write(tmp_path / "broken.toml", """
        [[rule]]
        id = "clinic.broken"
        title = "A broken rule"
        when = { tight_bands = true, trigger_point = true }
        then = { score = { trigger_point_therapie = 2 } }
        becuase = "misspelt"
        source = "furlan2015"
        evidence = "low"
    """)
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) >= 3
    for fragment in ("did you mean 'because'", "did you mean 'trigger_point_therapy'",
                     "neither a profile field nor derived by any rule (did you mean 'trigger_points'"):
        hit = [p for p in problems if fragment in p.message]
        assert hit, (fragment, text)
        assert hit[0].file == str(pack) and hit[0].rule_id == "clinic.broken" and hit[0].line
    assert f"{pack}:6: rule 'clinic.broken': key 'becuase'" in text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { f1 = true }\nthen = { derive = 'f2' }\nbecause = 'x'\n"
         "source = 'furlan2015'\nevidence = 'low'\n[[rule]]\nid = 'b'\ntitle = 'b'\nwhen = { f2 = true }\n"
         "then = { derive = 'f1' }\nbecause = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n",
         "derivation cycle: f1 -> f2 -> f1"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { stiffness = true }\nthen = { score = { kneading = inf } }\n"
         "because = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n", "must be a finite number, got inf"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { stiffness = true }\nthen = { score = { kneading = 1 } }\n"
         "because = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n" * 2, "duplicate rule id 'a'"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { pain_weeks = 'long' }\nthen = { score = { kneading = 1 } }\n"
         "because = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n", "'long' can never match"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { goal = 'relax' }\nthen = { score = { kneading = 1 } }\n"
         "because = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n", "did you mean 'relaxation'"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { stiffness = { gte = 1 } }\nthen = { score = { kneading = 1 } }\n"
         "because = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n", "unknown operator 'gte' (did you mean 'ge'?)"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { stiffness = true }\nthen = { exclude = { all = true } }\n"
         "because = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n", "mark the rule with safety = true"),
        ("[[rules]]\nid = 'a'\n", "unknown top-level key 'rules' (did you mean 'rule'?)"),
        ("[[rule]\nid = 'a'\n", "not valid TOML"),
        ("[[rule]]\nid = 'a'\ntitle = 'a'\nwhen = { red_flags = { contains = 'nightpain' } }\n"
         "then = { score = { kneading = 1 } }\nbecause = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n",
         "did you mean 'night_pain'"),
    ],
)
def test_validation_errors_say_what_to_fix(tmp_path, body, fragment):
    with pytest.raises(RuleError) as info:
        Recommender([write(tmp_path / "p.toml", body)])
    assert fragment in str(info.value)


def test_toml_syntax_errors_carry_the_line(tmp_path):
    with pytest.raises(RuleError) as info:
        Recommender([write(tmp_path / "p.toml", "[[rule]]\nid = 'a'\ntitle = = 'x'\n")])
    assert info.value.problems[0].line == 3


def test_oversized_packs_are_refused_before_the_engine_sees_them(tmp_path):
    rules = "".join(
        f"[[rule]]\nid = 'bulk.r{i}'\ntitle = 't'\nwhen = {{ stiffness = true }}\n"
        f"then = {{ score = {{ kneading = 0.001 }} }}\nbecause = 'x'\nsource = 'furlan2015'\nevidence = 'low'\n"
        for i in range(MAX_SHARED_PATTERN + 1)
    )
    with pytest.raises(RuleError, match="share the identical condition"):
        Recommender([write(tmp_path / "bulk.toml", rules)])


def test_pack_and_file_order_do_not_change_results(tmp_path):
    (tmp_path / "a").mkdir()
    a = write(tmp_path / "a" / "one.toml", HOT_STONES)
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    write(b_dir / "extra.toml", """
        [[rule]]
        id = "clinic.stretch"
        title = "Stretch the stiff"
        when = { stiffness = true }
        then = { score = { stretching = 0.5 } }
        because = "x"
        source = "furlan2015"
        evidence = "low"
    """)
    profile = {"stiffness": True, "cold_sensitive": True, "pain_weeks": 20}
    first = Recommender([a, b_dir]).recommend(profile).to_dict()
    second = Recommender([b_dir, a]).recommend(profile).to_dict()
    # Provenance names the packs in the order they were applied (a later pack can replace what an
    # earlier one set); everything else is the same whatever the order of packs and files.
    one, two = first.pop("provenance"), second.pop("provenance")
    assert first == second
    assert one["packs"][0] == two["packs"][0] and one["packs"][0]["default"]
    assert one["packs"][1:] == two["packs"][1:][::-1]
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_default_pack_examples_pass_with_full_coverage():
    from backcare._ruletest import run_examples

    report = run_examples(Recommender(), [str(default_rules_path())])
    assert report.ok, report.summary()
    assert report.examples >= 30
    assert report.coverage == 1.0 and report.uncovered == ()


def test_a_broken_example_fails_and_is_named(tmp_path):
    from backcare._ruletest import run_examples

    pack = write(tmp_path / "ex.toml", HOT_STONES.replace('first = "hot_stones"', 'first = "kneading"'))
    report = run_examples(Recommender([pack]), [str(pack)])
    assert not report.ok
    assert report.failures[0].name == "cold sensitive: hot stones first"
    assert "expected kneading first" in str(report.failures[0])
    assert report.rules == ("clinic.warmth",) and report.coverage == 1.0


def test_examples_naming_unknown_things_fail_on_load(tmp_path):
    pack = write(tmp_path / "ex.toml", """
        [[example]]
        name = "typo"
        profile = { stiffness = true }
        expect = { first = "swedish", fired = ["seed.stiffnes-elongation"] }
    """)
    with pytest.raises(RuleError) as info:
        Recommender([pack])
    assert "did you mean 'swedish_massage'" in str(info.value)
    assert "did you mean 'seed.stiffness-elongation'" in str(info.value)


def test_rule_files_are_data_no_code_is_executed():
    # The loader parses with tomllib only; nothing in the package evaluates,
    # unpickles or imports anything a rule file names.
    banned = {"eval", "exec", "compile", "__import__", "import_module"}
    for path in SRC.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if isinstance(func, ast.Name) or name == "import_module":
                    assert name not in banned, f"{path.name}: {name}()"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(m.split(".")[0] in ("pickle", "marshal", "yaml") for m in modules), path.name


def test_recommender_does_not_change_once_built(tmp_path):
    rec = Recommender()
    n = len(rec.rulebase.rules)
    Recommender([write(tmp_path / "clinic.toml", HOT_STONES)])
    assert len(rec.rulebase.rules) == n
    assert "hot_stones" not in rec.rulebase.techniques
