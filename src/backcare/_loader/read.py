"""Finding and reading a pack's files, and locating entries in their text."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from importlib import resources
from pathlib import Path

import attrs

from .._errors import BackcareError, Problem, RuleError
from .._text import quote

# ---------------------------------------------------------------------------
# Locating entries in the file text: tomllib gives no positions for values.


class _Locator:
    """Find the line of the n-th ``[[table]]`` (or the ``[table]``) of a file, and of a key in it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: dict[str, list[int]] = {}
        self.tables: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            m = re.match(r"\s*\[(\[?)\s*([A-Za-z0-9_.-]+)\s*\]", line)
            if m and m.group(1):
                self.headers.setdefault(m.group(2), []).append(i)
            elif m:
                self.tables.setdefault(m.group(2), i)

    def entry(self, table: str, index: int) -> int | None:
        found = self.headers.get(table, [])
        if index < len(found):
            return found[index] + 1
        if index == 0 and table in self.tables:
            return self.tables[table] + 1
        if index == 0 and "." in table:  # [urgency.emergency] written as emergency = { ... } under [urgency]
            parent, _, child = table.rpartition(".")
            if self.entry(parent, 0) is not None:
                return self.key(parent, 0, child)
        if index == 0:  # [urgency] given only through its sub-tables: the first of them
            prefix = table + "."
            lines = [line for name, line in self.tables.items() if name.startswith(prefix)]
            if lines:
                return min(lines) + 1
        return None

    def key(self, table: str, index: int, key: str) -> int | None:
        start = self.entry(table, index)
        if start is None:
            return None
        pattern = re.compile(rf"\s*(\[\s*{re.escape(table)}\.)?{re.escape(key)}\b")
        # The entry ends at the next header that is not one of its own sub-tables.
        end = re.compile(r"\s*\[\[" if table in self.headers else rf"\s*\[(?!\s*{re.escape(table)}\.)")
        for i in range(start, len(self.lines)):
            line = self.lines[i]
            if end.match(line):
                break
            if pattern.match(line):
                return i + 1
        return start

    def top_level(self, key: str) -> int | None:
        """The line of a top-level ``key = ...``, before the first table."""
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        for i, line in enumerate(self.lines):
            if re.match(r"\s*\[", line):
                return None
            if pattern.match(line):
                return i + 1
        return None


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


#: A pack (all its files together) larger than this is refused unread; the
#: environment variable overrides it, and ``load(max_pack_bytes=...)`` overrides both.
DEFAULT_MAX_PACK_BYTES = 4 * 2**20
MAX_PACK_BYTES_ENV = "BACKCARE_MAX_PACK_BYTES"
#: A directory pack may hold at most this many rule files, found among at most
#: this many directory entries: ``backcare rules check /`` stops, it does not
#: walk the whole disk.
MAX_PACK_FILES = 1000
MAX_DIRECTORY_ENTRIES = 100_000


class InputRefused(Exception):
    """A file that is not read: missing, not a regular file, too large, not UTF-8."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def byte_limit(value: int | None, env: str, default: int) -> int:
    """A size cap: ``value`` if given, else the environment variable ``env``, else ``default``."""
    if value is None:
        text = os.environ.get(env)
        if text is None or text.strip() == "":
            return default
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            value = -1
        if value < 1:
            raise BackcareError(f"{env} must be a positive whole number of bytes, got {quote(text)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"a size limit must be a positive whole number of bytes, got {quote(value)}")
    return value


def describe_bytes(n: int) -> str:
    """``4 MiB``, ``1,500 bytes``: a size as people write it."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_limited(path: Path, limit: int, what: str, setting: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or :class:`InputRefused`.

    The file is opened without blocking and checked before it is read, so a
    FIFO with no writer, ``/dev/zero`` or a terminal is refused at once
    instead of hanging or filling memory. ``what`` names the file in
    messages and ``setting`` says how to raise the limit.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputRefused(f"cannot read {what}: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputRefused(f"{what} is {_file_kind(mode)}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputRefused(f"cannot read {what}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if size > limit:
        raise InputRefused(f"{what} is larger than {describe_bytes(limit)} ({setting})", too_large=True)
    return b"".join(chunks)


def decode_utf8(data: bytes, what: str) -> str:
    """``data`` as UTF-8 text, or :class:`InputRefused` naming the first bad byte's line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputRefused(f"{what} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} "
                           "cannot be decoded") from exc


def _read_pack(path: Path, problems: list[Problem], max_pack_bytes: int | None = None) -> PackText | None:
    """Read a pack's files; None (and a problem) if the pack cannot be read at all."""
    limit = byte_limit(max_pack_bytes, MAX_PACK_BYTES_ENV, DEFAULT_MAX_PACK_BYTES)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        problems.append(Problem(f"rule pack not found: {path}", str(path), kind="input"))
        return None
    except OSError as exc:
        problems.append(Problem(f"cannot read rule pack: {exc.strerror or exc}", str(path), kind="input"))
        return None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        problems.append(Problem(f"a rule pack is a .toml file or a directory of them; this is {_file_kind(mode)}",
                                str(path), kind="input"))
        return None
    try:
        files = pack_files(path)
    except RuleError as exc:
        problems.extend(exc.problems)
        return None
    if not files:
        problems.append(Problem("no .toml rule files in this directory", str(path), kind="input"))
    texts = []
    left = limit
    setting = f"set {MAX_PACK_BYTES_ENV} to allow more"
    for file in files:
        try:
            data = read_limited(file, left, "rule file", setting)
            texts.append((str(file), decode_utf8(data, "rule file")))
        except InputRefused as exc:
            if exc.too_large:
                what = "rule file" if len(files) == 1 else f"rule pack {path}"
                problems.append(Problem(f"{what} is larger than {describe_bytes(limit)} ({setting})", str(file),
                                        kind="input"))
                return None
            problems.append(Problem(str(exc), str(file), kind="input"))
            continue
        left -= len(data)
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
    """The TOML files of a pack: the file itself, or a directory's, sorted.

    Symbolic links to directories are followed, but a link back into a
    directory being walked is a :class:`RuleError` (a loop), as are more than
    :data:`MAX_PACK_FILES` rule files or :data:`MAX_DIRECTORY_ENTRIES` entries.
    A ``.toml`` entry that is not a regular file is reported, never skipped.
    """
    if not path.is_dir():
        return [path]
    problems: list[Problem] = []
    found: list[Path] = []
    entries = 0

    def walk(directory: Path, ancestors: tuple[tuple[int, int], ...]) -> None:
        nonlocal entries
        try:
            info = os.stat(directory)
            here = (info.st_dev, info.st_ino)
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(f"cannot read directory: {exc.strerror or exc}", str(directory), kind="input"))
            return
        if here in ancestors:
            problems.append(Problem("symbolic link loop: this directory leads back to one that contains it",
                                    str(directory), kind="input"))
            return
        for entry in children:
            entries += 1
            if entries > MAX_DIRECTORY_ENTRIES or len(found) > MAX_PACK_FILES or problems:
                return
            child = directory / entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                walk(child, (*ancestors, here))
            elif entry.name.endswith(".toml"):
                try:
                    regular = stat.S_ISREG(os.stat(child).st_mode)
                except OSError as exc:
                    problems.append(Problem(f"cannot read rule file: {exc.strerror or exc}", str(child), kind="input"))
                    continue
                if not regular:
                    problems.append(Problem(f"rule file is {_file_kind(os.stat(child).st_mode)}, not a regular file",
                                            str(child), kind="input"))
                    continue
                found.append(child)

    walk(path, ())
    if not problems and entries > MAX_DIRECTORY_ENTRIES:
        problems.append(Problem(f"more than {MAX_DIRECTORY_ENTRIES:,} directory entries: is this a rule pack?",
                                str(path), kind="input"))
    elif not problems and len(found) > MAX_PACK_FILES:
        problems.append(Problem(f"more than {MAX_PACK_FILES:,} rule files in one pack", str(path), kind="input"))
    if problems:
        raise RuleError(problems)
    return sorted(found)


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
