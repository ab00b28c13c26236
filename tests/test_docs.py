"""The documentation builds cleanly, its examples run, and its catalogue matches the rules.

The HTML and doctest builds run once per session into pytest's tmp dirs,
with warnings as errors. They need Sphinx, furo and myst-parser (the ``docs``
extra) and Graphviz's ``dot``; without them these tests are skipped with the
reason, and ``make test`` installs both.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import backcare
from tests import docsite

sphinx_build = pytest.importorskip("sphinx.cmd.build", reason="the docs extra (Sphinx) is not installed")
pytest.importorskip("furo", reason="the docs extra (furo) is not installed")
pytest.importorskip("myst_parser", reason="the docs extra (myst-parser) is not installed")

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = [
    pytest.mark.skipif(not (DOCS / "conf.py").is_file(), reason="no docs/ in this tree (installed package?)"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (make test installs it)"),
]


@pytest.fixture(scope="session")
def html(docs_html: Path) -> Path:
    return docs_html


@pytest.fixture(scope="session")
def doctest_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("docs-doctest")
    status, log = docsite.build("doctest", out)
    return status, log, out


def test_html_builds_without_warnings(html: Path) -> None:
    for page in ("index", "getting-started", "tutorial-first-pack", "tutorial-web-app", "concepts", "how-it-works",
                 "faq", "glossary", "writing-rules", "serve", "catalogue", "cli", "api", "sources", "changelog",
                 "howto/call-from-an-app", "howto/score-a-table", "howto/debug-a-rule", "howto/change-a-cutoff",
                 "howto/pack-tests-in-ci", "howto/install", "catalogue/seed"):
        assert (html / f"{page}.html").is_file(), page


def test_every_docs_example_runs(doctest_build: tuple[int, str, Path]) -> None:
    status, log, out = doctest_build
    report = (out / "output.txt").read_text(encoding="utf-8") if (out / "output.txt").exists() else ""
    assert status == 0, f"doctest build failed:\n{log}\n{report}"
    total = re.search(r"^\s*(\d+) tests$", report, re.M)
    assert total and int(total.group(1)) >= 40, report
    assert "0 failures in tests" in report, report


def test_python_examples_are_doctests() -> None:
    """A ``>>>`` example outside a doctest directive would be shown but never run."""
    offenders = []
    for page in DOCS.glob("*.rst"):
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^(\.\. (code-block|code|sourcecode)::.*|::)\s*\n((?:\n|[ \t]+.*\n)+)", text, re.M):
            if ">>>" in m.group(3):
                offenders.append(f"{page.name}: {m.group(1)}")
        for line_no, line in enumerate(text.splitlines(), 1):
            if line.startswith(">>>"):
                offenders.append(f"{page.name}:{line_no}: bare >>> block")
    for page in DOCS.glob("*.md"):
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S):
            if ">>>" in m.group(2):
                offenders.append(f"{page.name}: ```{m.group(1)} block")
    assert not offenders, "write these as doctest directives so they run: " + "; ".join(offenders)


def test_a_broken_example_fails_the_doctest_build(tmp_path: Path) -> None:
    """The doctest build really checks output: a wrong expected value fails it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["sphinx.ext.doctest"]\n', encoding="utf-8")
    (src / "index.rst").write_text(
        "Broken\n======\n\n.. doctest::\n\n   >>> import backcare\n   >>> backcare.recommend({})"
        ".techniques\n   ('not', 'this')\n",
        encoding="utf-8",
    )
    status = sphinx_build.build_main(["-b", "doctest", "-q", "-W", str(src), str(tmp_path / "out")])
    assert status != 0


# ---------------------------------------------------------------------------
# The catalogue page against the rulebase the library loads


class _ClassText(HTMLParser):
    """Collect the text of every element carrying one of ``classes``."""

    def __init__(self, classes: set[str]) -> None:
        super().__init__()
        self.classes = classes
        self.found: dict[str, list[str]] = {c: [] for c in classes}
        self._open: list[tuple[str, str | None, list[str]]] = []  # tag, class collected, text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = set((dict(attrs).get("class") or "").split())
        hit = next(iter(cls & self.classes), None)
        self._open.append((tag, hit, []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, hit, text = self._open.pop()
            if hit:
                self.found[hit].append("".join(text).strip())
            if self._open:
                self._open[-1][2].extend(text)
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


@pytest.fixture(scope="session")
def catalogue(html: Path) -> tuple[str, dict[str, list[str]]]:
    """The catalogue: its front page and its pages of rules, one per rule file, as one text."""
    pages = [html / "catalogue.html", *sorted((html / "catalogue").glob("*.html"))]
    page = "\n".join(p.read_text(encoding="utf-8") for p in pages)
    parser = _ClassText({"backcare-rule-id", "backcare-red-flag-id", "backcare-contraindication-id"})
    parser.feed(page)
    return page, parser.found


def test_the_catalogue_has_a_page_per_rule_file(html: Path) -> None:
    rulebase = backcare.Recommender().rulebase
    files = {Path(r.origin.file).stem for r in rulebase.rules if r.origin}
    assert {p.stem for p in (html / "catalogue").glob("*.html")} == files
    for stem in files:
        text = (html / "catalogue" / f"{stem}.html").read_text(encoding="utf-8")
        ids = {r.id for r in rulebase.rules if r.origin and Path(r.origin.file).stem == stem}
        from docutils.nodes import make_id

        missing = [r for r in ids if f'id="{make_id("rule-" + r)}"' not in text]
        assert not missing, (stem, missing)


def test_catalogue_lists_every_rule(catalogue: tuple[str, dict[str, list[str]]]) -> None:
    _, found = catalogue
    rulebase = backcare.Recommender().rulebase
    assert len(found["backcare-rule-id"]) == len(set(found["backcare-rule-id"])), "a rule is listed twice"
    assert set(found["backcare-rule-id"]) == {r.id for r in rulebase.rules}


def test_catalogue_lists_every_red_flag_and_contraindication(catalogue: tuple[str, dict[str, list[str]]]) -> None:
    _, found = catalogue
    assert set(found["backcare-red-flag-id"]) == {f.id for f in backcare.red_flags()}
    assert set(found["backcare-contraindication-id"]) == {c.id for c in backcare.conditions()}


def test_catalogue_shows_the_new_safety_links(catalogue: tuple[str, dict[str, list[str]]]) -> None:
    """Issue 11: conditions that raise red flags, and the onset age, are visible in the catalogue."""
    page, _ = catalogue
    text = re.sub(r"<[^>]+>", "", page)
    for condition, flag in (("tumour_at_site", "history_of_cancer"), ("active_cancer_treatment", "history_of_cancer"),
                            ("systemic_infection", "fever"), ("recent_surgery", "recent_spinal_procedure")):
        assert condition in text and flag in text, (condition, flag)
    assert text.count("raises the red flag") >= 4
    assert "onset_age" in text and "safety.new-pain-over-50" in text
    for source in ("nice-ng59", "hill2008", "hill2011"):
        assert source in text, source


def test_catalogue_shows_the_chaining_diagram(html: Path, catalogue: tuple[str, dict[str, list[str]]]) -> None:
    page, _ = catalogue
    images = re.findall(r'<(?:object data|img src)="(_images/graphviz-[0-9a-f]+\.(?:svg|png))"', page)
    assert len(images) >= 2, "the chaining and safety diagrams are not on the catalogue page"
    for image in images:
        svg = (html / image).read_text(encoding="utf-8")
        assert re.search(r"<(\w+:)?svg\b", svg), image  # Sphinx rewrites links, giving ns0:svg
    chain = (html / images[0]).read_text(encoding="utf-8")
    # Every technique some rule scores is in the diagram, and so is every derived fact.
    rulebase = backcare.Recommender().rulebase
    scored = {rulebase.techniques[t].name for r in rulebase.rules for t, _ in r.then.score}
    derived = {f for r in rulebase.rules if not r.safety for f, _ in r.then.derive}
    for label in scored | derived:
        assert re.search(rf">{re.escape(label)}(?: = [^<]*)?</", chain), label


def _joined(page: str) -> str:
    """A page with ids put back together where the docs let them wrap (``scar_<wbr>tissue``)."""
    return page.replace('</span><wbr><span class="pre">', "").replace("<wbr>", "")


def test_profile_fields_and_rule_keys_are_documented(html: Path) -> None:
    concepts = _joined((html / "concepts.html").read_text(encoding="utf-8"))
    for name in backcare.Profile.__attrs_attrs__:
        if name.name != "extra":
            assert f'<span class="pre">{name.name}</span>' in concepts, name.name
    from backcare import _loader

    writing = _joined((html / "writing-rules.html").read_text(encoding="utf-8"))
    for table in (*_loader.SCHEMA.values(), _loader.THEN_KEYS, _loader.EXCLUDE_KEYS, _loader.REFER_KEYS,
                  _loader.EXPECT_KEYS):
        for key in table.values():
            assert f'<span class="pre">{key.name}</span>' in writing, key.name


def test_api_reference_covers_the_public_api(html: Path) -> None:
    """Every name in backcare.__all__ has an entry, so a new public name cannot go undocumented."""
    page = (html / "api.html").read_text(encoding="utf-8")
    missing = [name for name in backcare.__all__ if f'id="backcare.{name}"' not in page]
    assert not missing, f"add these to docs/api.rst: {missing}"


def _entry_text(page: str, ident: str) -> str | None:
    """The text of an API entry's description (its <dd>), or None without an entry."""
    import html as htmllib

    m = re.search(rf'<dt [^>]*id="{re.escape(ident)}">.*?</dt>\s*<dd>(.*?)</dd>', page, re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip() if m else None


def test_api_reference_documents_every_field(html: Path) -> None:
    """Issue 14: every public name and every field of the result and catalogue classes has an entry that says
    what it is; no attrs boilerplate, no private names."""
    import attrs

    import html as htmllib

    page = (html / "api.html").read_text(encoding="utf-8")
    shown = htmllib.unescape(re.sub(r"<[^>]+>", "", page))
    for bad in ("Method generated by attrs", "__new__(", "PackText", "backcare._loader", "backcare._result",
                "str(object=", "Return self"):
        assert bad not in shown, bad
    undocumented = []
    for name in backcare.__all__:
        obj = getattr(backcare, name)
        if _entry_text(page, f"backcare.{name}") in (None, ""):
            undocumented.append(name)
        if isinstance(obj, type) and attrs.has(obj):
            for field in attrs.fields(obj):
                if not field.name.startswith("_") and not _entry_text(page, f"backcare.{name}.{field.name}"):
                    undocumented.append(f"{name}.{field.name}")
    for extra in ("ProfileError.field", "RuleError.problems", "Recommender.ranking", "Recommender.provenance",
                  "Recommender.rulebase", "Referral.withholds_techniques", "RankedTechnique.supported_score"):
        if not _entry_text(page, f"backcare.{extra}"):
            undocumented.append(extra)
    assert not undocumented, f"no entry, or an empty one, in docs/api.rst: {undocumented}"
    disclaimer = _entry_text(page, "backcare.DISCLAIMER") or ""
    assert "Shown with every result" in disclaimer


def test_every_page_carries_the_disclaimer(html: Path) -> None:
    import html as htmllib

    for page in html.glob("*.html"):
        if page.name in ("genindex.html", "search.html", "py-modindex.html"):
            continue
        text = htmllib.unescape(page.read_text(encoding="utf-8"))
        assert backcare.DISCLAIMER in text, page.name


def test_the_changelog_agrees_with_the_version(html: Path) -> None:
    """Issue 14: the site's version and the changelog's entries tell one story.

    A development version (``0.2.0.dev0``) is what ``[Unreleased]`` describes,
    newer than every release listed; a release version has a dated entry of
    its own at the top. The changelog page says which.
    """
    import html as htmllib

    from packaging.version import Version

    text = (DOCS.parent / "CHANGELOG.md").read_text(encoding="utf-8")
    entries = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.M)
    version = Version(backcare.__version__)
    released = [Version(v) for v, _ in entries if v != "Unreleased"]
    assert released == sorted(released, reverse=True), "releases newest first"
    assert all(date for v, date in entries if v != "Unreleased"), "every release has a date"
    if version.is_devrelease or version.is_prerelease:
        assert entries[0][0] == "Unreleased", entries[:1]
        assert all(r < version for r in released), (version, released)
        said = f"These pages document backcare {version}, a development version of {version.base_version}"
    else:
        assert entries[0][0] == str(version) or (entries[0][0] == "Unreleased" and entries[1][0] == str(version))
        said = f"These pages document backcare {version}"
    page = htmllib.unescape(re.sub(r"<[^>]+>", "", (html / "changelog.html").read_text(encoding="utf-8")))
    assert said in " ".join(page.split())
    assert f"backcare {version}" in (html / "index.html").read_text(encoding="utf-8")  # the site's title
