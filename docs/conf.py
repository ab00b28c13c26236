"""Sphinx configuration for the backcare documentation.

Everything the docs say about the rules, the profile fields, the rule-file
schema and the command line is generated at build time by the local extension
``_ext/backcare_docs.py`` from the same objects the library uses, so it cannot
drift from the code. Build with ``make docs``.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import backcare  # noqa: E402

project = "backcare"
author = "backcare developers"
copyright = "backcare developers"
release = version = backcare.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.graphviz",
    "backcare_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# _generated/ holds fragments written by backcare_docs at build time; pages
# include them, they are not pages themselves.
exclude_patterns = ["_build", "_generated", "examples", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- HTML ---------------------------------------------------------------------
html_theme = "furo"
html_title = f"backcare {release}"
html_static_path = ["_static"]
html_css_files = ["backcare.css"]
html_theme_options = {
    # On every page: backcare gives information, not medical advice.
    "announcement": backcare.DISCLAIMER,
    "navigation_with_keys": True,
}
html_show_sourcelink = False

# -- autodoc: the public API only (backcare.__all__) ----------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
add_module_names = False

# -- doctest: every Python example on these pages runs -------------------------
# Examples are written as {doctest} blocks. Bare ``>>>`` blocks (docstrings
# pulled in by autodoc) are tested by pytest's --doctest-modules instead.
doctest_test_doctest_blocks = ""
doctest_global_setup = f"""
import pathlib
DOCS = pathlib.Path({str(DOCS)!r})
REPO = DOCS.parent
"""

# -- graphviz -----------------------------------------------------------------
graphviz_output_format = "svg"
graphviz_dot_args = ["-Gfontname=sans-serif", "-Nfontname=sans-serif", "-Efontname=sans-serif"]
