"""Issue 13, item 4: the pytest plugin runs a rule pack's examples as pytest items."""

from __future__ import annotations

import textwrap

import pytest

from .test_tooling import CLINIC

pytestmark = pytest.mark.slow  # each test runs pytest in a fresh process


PACK = CLINIC  # two examples, one failing on purpose


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pack = pytester.path / "rules" / "clinic"
    pack.mkdir(parents=True)
    (pack / "clinic.toml").write_text(textwrap.dedent(PACK).lstrip(), encoding="utf-8")
    pytester.makepyfile(test_own="def test_own_code():\n    assert True\n")
    return pytester


def test_inactive_unless_asked(project):
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_command_line_option_runs_each_example_as_an_item(project):
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-v", "--backcare-pack", "rules/clinic")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*rules/clinic/clinic.toml::relaxation: hot stones first PASSED*",
        "*rules/clinic/clinic.toml::wrong on purpose FAILED*",
        "*example 'wrong on purpose' failed:*",
        "*expected kneading first, got ['hot_stones'*",
        "*rules fired: clinic.relax, safety.age-not-given, seed.relaxation-goal*",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_ini_setting_and_k_selection(project):
    project.makeini("[pytest]\nbackcare_packs = rules/clinic\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "hot and stones")
    result.assert_outcomes(passed=1, deselected=2)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)


def test_a_broken_or_empty_pack_fails_instead_of_passing_silently(project):
    (project.path / "rules" / "clinic" / "clinic.toml").write_text('[[rule]]\nid = "x"\n')
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--backcare-pack", "rules/clinic")
    result.assert_outcomes(passed=1, failed=1)
    assert "missing required key 'title'" in result.stdout.str()
    (project.path / "rules" / "clinic" / "clinic.toml").write_text(
        textwrap.dedent(PACK).split("[[example]]")[0])
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--backcare-pack", "rules/clinic")
    result.assert_outcomes(passed=1, failed=1)
    assert "no [[example]] in this rule pack" in result.stdout.str()


def test_a_copy_of_the_default_pack_runs_as_the_default_pack(pytester):
    import shutil

    from backcare._loader import default_rules_path

    shutil.copytree(default_rules_path(), pytester.path / "rules")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--backcare-pack", "rules")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 30 and "failed" not in outcomes and "error" not in outcomes, outcomes
