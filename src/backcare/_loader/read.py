"""Finding and reading a pack's files, and locating entries in their text."""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from pathlib import Path

import attrs

from .._errors import Problem, RuleError

# ---------------------------------------------------------------------------
# Locating entries in the file text: tomllib gives no positions for values.


class _Locator:
    """Find the line of the n-th ``[[table]]`` of a file and of a key in it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: dict[str, list[int]] = {}
        for i, line in enumerate(self.lines):
            m = re.match(r"\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]", line)
            if m:
                self.headers.setdefault(m.group(1), []).append(i)

    def entry(self, table: str, index: int) -> int | None:
        found = self.headers.get(table, [])
        return found[index] + 1 if index < len(found) else None

    def key(self, table: str, index: int, key: str) -> int | None:
        start = self.entry(table, index)
        if start is None:
            return None
        pattern = re.compile(rf"\s*(\[\s*{re.escape(table)}\.)?{re.escape(key)}\b")
        for i in range(start, len(self.lines)):
            line = self.lines[i]
            if i >= start and re.match(r"\s*\[\[", line):
                break
            if pattern.match(line):
                return i + 1
        return start



@attrs.frozen
class PackText:
    """A rule pack held in memory: a display name and each file's (display name, TOML text).

    The loader reads a pack from disk into one of these before parsing, and
    accepts one in place of a path, so a recommender can be rebuilt where its
    rule files do not exist (another process, another machine). Problems name
    the files by their display names, exactly as when read from disk.
    """

    name: str
    files: tuple[tuple[str, str], ...]


def _read_pack(path: Path, problems: list[Problem]) -> PackText | None:
    """Read a pack's files; None (and a problem) if the pack is missing."""
    if not path.exists():
        problems.append(Problem(f"rule pack not found: {path}", str(path)))
        return None
    files = pack_files(path)
    if not files:
        problems.append(Problem("no .toml rule files in this directory", str(path)))
    texts = []
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(f"cannot read rule file: {exc}", str(file)))
    return PackText(str(path), tuple(texts))



def default_rules_path() -> Path:
    """The default pack: inside the installed package, or the checkout's rules/."""
    packaged = Path(str(resources.files("backcare"))) / "rules"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "rules"
    if checkout.is_dir():
        return checkout
    raise RuleError(f"the default rule pack is missing: looked in {packaged} and {checkout}")


def pack_files(path: Path) -> list[Path]:
    """The TOML files of a pack: the file itself, or a directory's, sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.toml") if p.is_file())
    return [path]



def pack_digest(pack: PackText) -> str:
    """A SHA-256 of a pack's content, independent of where its files live.

    Each file counts by its name relative to the pack (a single-file pack by
    its file name) and its text, length-prefixed so no two packs collide by
    moving text between files.
    """
    h = hashlib.sha256()
    root = Path(pack.name)
    for shown, text in pack.files:
        try:
            name = Path(shown).relative_to(root).as_posix()
        except ValueError:
            name = Path(shown).name
        for part in (name, text):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()
