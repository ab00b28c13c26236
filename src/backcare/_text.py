"""Putting untrusted keys and values into messages and output, safely.

Profiles and rule packs come from people backcare does not control. Whatever
they hold, a message about them stays short, is built in bounded time, and
cannot drive the terminal it is printed on: a 10 MB key, a list nested
100,000 deep, a list that holds itself, or an integer of 5,000 digits all
print as a few dozen characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

#: About how much of one key or value a message quotes.
QUOTE_LIMIT = 100

#: C0 controls but newline and tab, DEL, the C1 controls (U+009B is a
#: terminal escape on its own), and the invisible format characters that
#: reorder or hide text: bidirectional controls (U+202A-202E, U+2066-2069),
#: zero-width characters, line and paragraph separators, the byte-order mark.
#: A rule pack may not hold them (they could make one text look like another);
#: output shows any that get through as escapes.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                        r"\u2060-\u2069\ufeff]")

_ITEMS = 4  # items shown per list or mapping level
_LEVELS = 3  # nesting levels shown


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, built in bounded time and space.

    Never calls ``repr`` on a container, a long string or a huge integer as a
    whole: only on what is shown.
    """
    text = _quote(value, _LEVELS, limit + 1)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote(value: object, levels: int, budget: int) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 128:  # str() of a huge int is slow, and refused past 4300 digits
            return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
        return repr(value)
    if isinstance(value, str):
        if len(value) > budget:
            return repr(value[:budget]) + "..."
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:budget])) + ("..." if len(value) > budget else "")
    if isinstance(value, (list, tuple, set, frozenset, Mapping)):
        brackets = {list: "[]", tuple: "()"}.get(type(value), "{}")
        opener, closer = brackets[0], brackets[1]
        if isinstance(value, (set, frozenset)) and not value:
            return f"{type(value).__name__}()"
        if levels <= 0:
            return opener + "..." + closer
        parts: list[str] = []
        used = 0
        items = iter(value.items()) if isinstance(value, Mapping) else iter(value)
        for index, item in enumerate(items):
            if index >= _ITEMS or used > budget:
                parts.append("...")
                break
            if isinstance(value, Mapping):
                k, v = item
                part = _quote(k, levels - 1, budget - used) + ": " + _quote(v, levels - 1, budget - used)
            else:
                part = _quote(item, levels - 1, budget - used)
            parts.append(part)
            used += len(part) + 2
        if isinstance(value, tuple) and len(parts) == 1 and parts[0] != "...":
            return opener + parts[0] + "," + closer
        return opener + ", ".join(parts) + closer
    return f"<{type(value).__name__}>"


def escape_controls(text: str) -> str:
    """``text`` with control characters (but newline and tab) shown as ``\\x1b`` escapes.

    For text bound for a terminal: an escape sequence in a rule pack or a
    profile must show as characters, never clear or rewrite the screen.
    """
    return CONTROL_RE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def display_key(text: str) -> str:
    """What a name looks like to a reader, for telling whether two names can be told apart.

    Compatibility forms folded (NFKC), case folded, and invisible, combining,
    punctuation and spacing characters dropped: "Deep pressure.", "deep
    PRESSURE" and "Deep\u200bpressure" all look like "Deep pressure".
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "CMPZ")


def scripts(text: str) -> set[str]:
    """The writing systems of the letters in ``text`` (LATIN, CYRILLIC, GREEK, ...).

    A name mixing scripts ("D" Latin, "е" Cyrillic) can imitate another name
    letter for letter, so display names must keep to one.
    """
    folded = unicodedata.normalize("NFKC", text)  # a fullwidth Latin letter is a Latin letter
    return {unicodedata.name(ch, "?").split(" ")[0] for ch in folded if ch.isalpha()}
