"""The built documentation in a real browser: every page fits the screen, and nothing on it is broken.

The site is built with warnings as errors, served on a loopback port, and
every page is opened in headless Chromium (Debian's package, driven by
Playwright, as in ``test_serve_browser.py``) at 1366 and 390 px wide. A page
fails on:

- being wider than the viewport (the reader scrolls the whole page sideways);
- an image or diagram wider than its container, or any box whose content is
  cut off or must be scrolled sideways (a code line, a table, a diagram);
- a table cell that breaks a word across lines ("Pressu/re");
- a console error, a script error or a request that fails, and a page
  without an icon of its own (browsers then ask for ``/favicon.ico``, a 404);
- a diagram whose text is smaller than the body text, unless it links to the
  diagram at full size, where the text is at least that large.

Links are checked from the files: every internal link (pages and the
diagrams' SVG files) must reach a file that exists and an anchor in it. And
searching a rule id must find its rule card.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

pytest.importorskip("sphinx", reason="the docs extra (Sphinx) is not installed")
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (test extra)")

from tests import docsite  # noqa: E402
from tests.chromium import browser  # noqa: E402,F401 - a fixture

pytestmark = [
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (make chromium installs it)"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (make test installs it)"),
    pytest.mark.skipif(not (docsite.DOCS / "conf.py").is_file(), reason="no docs/ in this tree"),
    pytest.mark.slow,
]

WIDTHS = {"desktop": (1366, 768), "mobile": (390, 844)}


def pages(root: Path) -> list[str]:
    """Every HTML page of the site, as a path relative to its root."""
    skip = ("_static/", "_sources/", "_images/")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not p.relative_to(root).as_posix().startswith(skip))


@pytest.fixture(scope="module")
def site(docs_html: Path) -> Iterator[str]:
    with docsite.serve(docs_html) as url:
        yield url


# What is measured on each page, in the page. Returns a list of problems in words.
CHECK_PAGE = r"""
() => {
  const problems = [];
  const short = (el) => {
    const text = (el.textContent || '').trim().replace(/\s+/g, ' ');
    const id = el.id ? '#' + el.id : '';
    const cls = el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '';
    return `<${el.tagName.toLowerCase()}${id}${cls}> "${text.slice(0, 50)}"`;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  // 1. The page itself.
  const vw = document.documentElement.clientWidth;
  const sw = document.documentElement.scrollWidth;
  if (sw > vw + 1) problems.push(`the page is ${sw}px wide in a ${vw}px viewport`);
  // Without an icon of its own, a browser asks for /favicon.ico, which the site does not have.
  if (!document.querySelector('link[rel~="icon"]')) problems.push('no favicon: browsers ask for /favicon.ico (404)');
  // 2. Images and diagrams wider than the box they sit in.
  for (const el of document.querySelectorAll('img, object, svg, video, iframe')) {
    if (el.tagName.toLowerCase() === 'svg' && el.parentElement.closest('svg')) continue;
    if (!visible(el)) continue;
    let box = el.parentElement;
    while (box && getComputedStyle(box).display.startsWith('inline')) box = box.parentElement;
    const w = el.getBoundingClientRect().width;
    if (box && w > box.clientWidth + 1)
      problems.push(`${short(el)} is ${Math.round(w)}px wide in a ${box.clientWidth}px box`);
  }
  // 3. Boxes whose content is cut off or scrolls sideways: code lines, tables, diagrams.
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el)) continue;
    const ox = getComputedStyle(el).overflowX;
    if (ox === 'visible') continue;
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0)
      problems.push(`${short(el)} holds content ${el.scrollWidth}px wide in ${el.clientWidth}px (overflow-x: ${ox})`);
  }
  // 4. Table cells: no word broken across lines, nothing spilling out of the cell.
  const word = /[\p{L}\p{N}]{2,}/gu;
  for (const cell of document.querySelectorAll('td, th')) {
    if (!visible(cell)) continue;
    const cr = cell.getBoundingClientRect();
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(word)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        const lines = new Set(rects.map(r => Math.round(r.top)));
        if (lines.size > 1) problems.push(`a table cell breaks the word "${m[0]}" over ${lines.size} lines: ${short(cell)}`);
        for (const r of rects)
          if (r.right > cr.right + 1 || r.left < cr.left - 1) {
            problems.push(`"${m[0]}" spills out of its table cell: ${short(cell)}`);
            break;
          }
      }
    }
  }
  return problems;
}
"""

# Diagrams: the size of their text as shown, and where their full-size link goes.
DIAGRAM_TEXT = r"""
() => [...document.querySelectorAll('object[type="image/svg+xml"], img[src$=".svg"]')].map(el => {
  const doc = el.tagName.toLowerCase() === 'object' ? el.contentDocument : null;
  let smallest = null;
  if (doc) {
    for (const t of doc.querySelectorAll('text')) {
      const size = parseFloat(t.getAttribute('font-size') || getComputedStyle(t).fontSize);
      const px = size * t.getScreenCTM().a;
      if (smallest === null || px < smallest) smallest = px;
    }
  }
  const link = el.closest('a') || (el.closest('figure, .backcare-diagram') || el.parentElement).querySelector('a.backcare-fullsize');
  return {src: el.getAttribute('data') || el.getAttribute('src'), smallest,
          fullsize: link ? link.href : null};
})
"""


def _open(browser, url: str, width: int, height: int) -> tuple[object, object, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
    # A request the page itself cancels (leaving a page aborts its fetches) is no failure.
    page.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else
            errors.append(f"request failed: {r.url} ({r.failure})"))
    page.goto(url, wait_until="load")
    return context, page, errors


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_every_page_fits_the_screen(browser, site: str, docs_html: Path, screen: str) -> None:
    width, height = WIDTHS[screen]
    problems: list[str] = []
    body_px: float | None = None
    for name in pages(docs_html):
        context, page, errors = _open(browser, site + name, width, height)
        try:
            found = page.evaluate(CHECK_PAGE) + errors
            if body_px is None:
                body_px = float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
            if screen == "desktop":
                for d in page.evaluate(DIAGRAM_TEXT):
                    if d["smallest"] is not None and d["smallest"] < body_px - 0.5 and not d["fullsize"]:
                        found.append(f"diagram {d['src']}: text drawn at {d['smallest']:.1f}px, smaller than the "
                                     f"body text ({body_px:g}px), and no link to it at full size")
        finally:
            context.close()
        problems += [f"{name}: {p}" for p in dict.fromkeys(found)]
    assert not problems, f"{len(problems)} problems at {width} px:\n" + "\n".join(problems[:80])


def test_diagrams_open_full_size_with_readable_text(browser, site: str, docs_html: Path) -> None:
    """A diagram drawn smaller than the body text links to itself at full size, where its text is large enough."""
    width, height = WIDTHS["desktop"]
    checked = 0
    problems = []
    for name in pages(docs_html):
        if "graphviz" not in (docs_html / name).read_text(encoding="utf-8"):
            continue
        context, page, _ = _open(browser, site + name, width, height)
        try:
            body_px = float(page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)"))
            diagrams = page.evaluate(DIAGRAM_TEXT)
            for d in diagrams:
                if not d["fullsize"]:
                    continue
                page.goto(d["fullsize"], wait_until="load")
                smallest = page.evaluate("""() => Math.min(...[...document.querySelectorAll('text')].map(
                    t => parseFloat(t.getAttribute('font-size')) * t.getScreenCTM().a))""")
                checked += 1
                if smallest < body_px - 0.5:
                    problems.append(f"{name}: {d['fullsize']} at full size draws text at {smallest:.1f}px")
        finally:
            context.close()
    assert not problems, "\n".join(problems)
    assert checked, "no diagram links to itself at full size"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key] or "")
        for key in ("href", "src", "data", "xlink:href", "ns1:href"):
            if a.get(key):
                self.links.append(a[key] or "")


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_no_broken_internal_links(docs_html: Path) -> None:
    files = [docs_html / p for p in pages(docs_html)] + sorted((docs_html / "_images").glob("*.svg"))
    parsed: dict[Path, _Links] = {}
    broken = []
    for file in files:
        base = "http://site/" + file.relative_to(docs_html).as_posix()
        for link in _parse(file).links:
            url = urlsplit(urljoin(base, link))
            if url.scheme not in ("http", "https") or url.netloc != "site":
                continue
            target = docs_html / unquote(url.path.lstrip("/"))
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{file.relative_to(docs_html)}: {link} (no file)")
                continue
            if url.fragment and target.suffix == ".html":
                ids = parsed.setdefault(target, _parse(target)).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{file.relative_to(docs_html)}: {link} (no anchor)")
    assert not broken, f"{len(broken)} broken links:\n" + "\n".join(broken[:60])


def test_searching_a_rule_id_finds_its_rule_card(browser, site: str) -> None:
    import backcare

    rule_id = "seed.trigger-point-pressure"
    assert rule_id in {r.id for r in backcare.Recommender().rulebase.rules}
    context, page, errors = _open(browser, f"{site}search.html?q={rule_id}", *WIDTHS["desktop"])
    try:
        page.wait_for_function("document.querySelector('#search-results .search-summary') !== null"
                               " && !document.querySelector('#search-results .search-summary').textContent"
                               ".includes('Preparing')")
        hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
        assert hrefs, "no search results"
        from docutils.nodes import make_id

        first = urlsplit(hrefs[0])
        assert first.fragment == make_id("rule-" + rule_id), f"the first result is not the rule's card: {hrefs[:3]}"
        page.goto(hrefs[0], wait_until="load")
        card = page.locator(f'[id="{first.fragment}"]')
        assert rule_id in card.inner_text()
        assert card.evaluate("el => el.closest('.backcare-rule') !== null"), "the result is not the rule's card"
    finally:
        context.close()
    assert not errors, errors
