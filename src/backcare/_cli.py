"""The ``backcare`` command: recommend from JSON, inspect, check and test rule packs.

Exit codes: 0 ok; 1 a check or test failed (a rule pack with problems under
``rules check`` or ``rules test``, a failing example, coverage below
``--min-coverage``, a pack with no examples); 2 bad input or usage (a
profile or pack that cannot be read or is refused, a bad profile, a broken
pack given with ``--rules``, an unknown option). Errors go to stderr as one
message starting ``backcare: error:``, never a traceback, because the people
reading them are rule authors and operators, not backcare's developers.

Inputs are bounded: a profile may be at most 1 MiB (set
``BACKCARE_MAX_PROFILE_BYTES`` to change it) and a rule pack at most 4 MiB
(``BACKCARE_MAX_PACK_BYTES``); only regular files are read, so a FIFO or a
device is refused at once. A profile is one JSON object, nested at most 32
deep, each key given once, numbers of at most 30 digits. Control characters
in anything printed are shown as escapes.

A path given with ``--rules`` or to ``rules check`` and ``rules test`` that
holds the same files as the default pack (the ``rules/`` directory of a
backcare checkout) is the default pack, not a second copy of it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._errors import BackcareError, RuleError
from ._loader.read import InputRefused, PackText, byte_limit, decode_utf8, describe_bytes, read_limited
from ._model import RANKINGS
from ._recommender import Recommender
from ._ruletest import read_packs, run_examples
from ._schema import pack_schema, profile_schema, result_schema
from ._text import CONTROL_RE, escape_controls, quote

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130

DEFAULT_MAX_PROFILE_BYTES = 2**20
MAX_PROFILE_BYTES_ENV = "BACKCARE_MAX_PROFILE_BYTES"
MAX_JSON_DEPTH = 32
MAX_JSON_DIGITS = 30

#: The Python argument a loader message names, and the option a CLI user sets instead.
_API_TO_CLI = (("Recommender(..., allow_safety_overrides=True)", "--allow-safety-overrides"),
               ("allow_safety_overrides=True", "--allow-safety-overrides"))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"backcare: error: {message}\n")


def _pack_options(p: argparse.ArgumentParser, *, rules: bool = True) -> None:
    """The options of every command that loads rule packs."""
    if rules:
        p.add_argument("--rules", action="append", default=[], metavar="PATH",
                       help="add a rule pack (a .toml file or a directory of them); repeatable")
    p.add_argument("--no-default", action="store_true",
                   help="do not load the default rules first: only the packs named here")
    p.add_argument("--allow-safety-overrides", action="store_true",
                   help="let rule packs disable or replace safety rules (results then say so)")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="backcare", description="Ranked, explained massage techniques for back pain. "
                "Information, not medical advice.")
    p.add_argument("--version", action="version", version=f"backcare {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rec = sub.add_parser("recommend", help="recommend techniques for a profile in a JSON file ('-' for stdin)")
    rec.add_argument("profile", help="path to a JSON profile, or - to read standard input")
    rec.add_argument("--json", action="store_true", help="print the result as JSON (Recommendation.to_dict())")
    rec.add_argument("--ranking", choices=RANKINGS, default=None,
                     help="order techniques by the whole score (seed) or by the evidence-backed points "
                          "first (evidence); default: what the packs ask for, else seed")
    rec.add_argument("--why-not", metavar="TECHNIQUE", action="append", default=[],
                     help="also say why a technique is not recommended (excluded, demoted, or the nearest "
                          "rules that would have scored it); repeatable")
    rec.add_argument("--what-if", action="store_true",
                     help="also list the single-field changes that would change the top technique or the referral")
    _pack_options(rec)

    rules = sub.add_parser("rules", help="list, show, check and test rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    lst = rsub.add_parser("list", help="list the rules in use")
    _pack_options(lst)
    show = rsub.add_parser("show", help="show one rule")
    show.add_argument("id", help="the id of the rule to show, as `rules list` prints it")
    _pack_options(show)
    chk = rsub.add_parser("check", help="validate rule packs on top of the default rules")
    chk.add_argument("paths", nargs="+", metavar="PATH", help="a rule pack to check: a .toml file or a directory")
    _pack_options(chk, rules=False)
    tst = rsub.add_parser("test", help="run the examples in rule packs and report rule coverage")
    tst.add_argument("paths", nargs="+", metavar="PATH",
                     help="a rule pack whose examples to run: a .toml file or a directory")
    tst.add_argument("-v", "--verbose", action="store_true", help="list every example and its outcome")
    tst.add_argument("-k", metavar="TEXT", dest="keyword",
                     help="run only the examples whose name contains TEXT (any case)")
    tst.add_argument("--format", choices=["text", "json"], default="text",
                     help="how to print the report (json: every example, its outcome and the coverage)")
    tst.add_argument("--junit-xml", metavar="FILE", help="also write the report as JUnit XML to FILE, for CI")
    tst.add_argument("--min-coverage", metavar="N", type=_percent, default=0.0,
                     help="fail when fewer than N %% of the packs' rules are fired by an example")
    tst.add_argument("--allow-empty", action="store_true",
                     help="accept a pack that runs no example (without it, that fails the test)")
    _pack_options(tst, rules=False)

    sch = sub.add_parser("schema", help="print the JSON Schema of a profile, a result or a rule file")
    sch.add_argument("what", choices=["profile", "result", "pack"],
                     help="profile: what recommend reads; result: what recommend --json prints; "
                          "pack: a rule file, for TOML editors")
    _pack_options(sch)

    srv = sub.add_parser("serve", help="serve the CDS Hooks endpoint, JSON API and intake page (the serve extra)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    srv.add_argument("--ranking", choices=RANKINGS, default=None,
                     help="the ranking policy, as for recommend (default: what the packs ask for, else seed)")
    srv.add_argument("--max-body", type=int, default=1_048_576, metavar="BYTES",
                     help="largest request body accepted (default 1048576)")
    srv.add_argument("--access-log", action="store_true",
                     help="log each request's method, path and status (never its body); off by default")
    _pack_options(srv)
    return p


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {quote(text)}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {quote(text)}")
    return value


class _InputError(Exception):
    """Bad input found by the command itself (not by the library)."""


# ---------------------------------------------------------------------------
# Reading a profile: bounded, strict JSON


def _read_profile(arg: str) -> Any:
    limit = byte_limit(None, MAX_PROFILE_BYTES_ENV, DEFAULT_MAX_PROFILE_BYTES)
    what = "standard input" if arg == "-" else f"profile {arg}"
    setting = f"set {MAX_PROFILE_BYTES_ENV} to allow more"
    try:
        if arg == "-":
            stream = getattr(sys.stdin, "buffer", None)  # a text-only stdin (a test's) has none
            data = stream.read(limit + 1) if stream is not None else sys.stdin.read(limit + 1).encode()
            if len(data) > limit:
                raise InputRefused(f"{what} is larger than {describe_bytes(limit)} ({setting})")
        else:
            data = read_limited(Path(arg), limit, what, setting)
        text = decode_utf8(data, what)
    except InputRefused as exc:
        raise _InputError(str(exc)) from exc
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise _InputError(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels deep; a profile is one object "
                          "of fields")
    try:
        profile = json.loads(text, object_pairs_hook=_unique_keys(what), parse_int=_bounded_int(what),
                             parse_constant=_no_constant(what))
    except json.JSONDecodeError as exc:
        raise _InputError(f"{what}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(profile, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(
            type(profile), "a number")
        raise _InputError(f"{what}: a profile is a JSON object of field names and values, got {kind}")
    return profile


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text (strings skipped), stopping past the limit."""
    depth = deepest = 0
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


def _unique_keys(what: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _InputError(f"{what}: key {quote(key)} is given twice; give each field once")
            out[key] = value
        return out

    return build


def _bounded_int(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > MAX_JSON_DIGITS:
            raise _InputError(f"{what}: a number of {digits} digits; profile numbers have at most {MAX_JSON_DIGITS}")
        return int(text)

    return parse


def _no_constant(what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        raise _InputError(f"{what}: not valid JSON: {text} is not a JSON value")

    return parse


# ---------------------------------------------------------------------------
# Output: every line escaped, every error with one prefix


def _out(text: str) -> None:
    print(escape_controls(text))


def _print_json(data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    # JSON escapes C0 controls itself; DEL, C1 (U+009B is a terminal escape) and the invisible
    # format characters it leaves raw: escape those too, as JSON escapes.
    print(CONTROL_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def _err(message: str) -> None:
    for api, cli in _API_TO_CLI:
        message = message.replace(api, cli)
    print(f"backcare: error: {escape_controls(message)}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Packs


def _packs(args: argparse.Namespace, paths: Sequence[str]) -> tuple[list[PackText], list[str]]:
    return read_packs(paths, include_default=not args.no_default)


def _recommender(args: argparse.Namespace, paths: Sequence[str], **kw: Any) -> Recommender:
    extra, _ = _packs(args, paths)
    return Recommender(extra, include_default=not args.no_default,
                       allow_safety_overrides=args.allow_safety_overrides, **kw)


def _input_problem(exc: RuleError) -> bool:
    """Whether a pack was refused unread (bad input), rather than read and found wrong (a failed check)."""
    return any(p.kind == "input" for p in exc.problems)


# ---------------------------------------------------------------------------
# Commands


def _run(args: argparse.Namespace) -> int:
    if args.command == "recommend":
        profile = _read_profile(args.profile)
        result = _recommender(args, args.rules, ranking=args.ranking).recommend(profile)
        why_not = [result.why_not(t) for t in args.why_not]
        what_if = result.what_if() if args.what_if else None
        if args.json:
            data = result.to_dict()
            if why_not:
                data["why_not"] = [w.to_dict() for w in why_not]
            if what_if is not None:
                data["what_if"] = [w.to_dict() for w in what_if]
            _print_json(data)
            return OK
        _out(result.explain())
        for w in why_not:
            _out(f"\nWhy not {w.name}?\n{w}")
        if what_if is not None:
            _out("\nWhat if? Single changes that would change the top technique or the referral:")
            _out("\n".join(f"- {w}" for w in what_if) or "- none")
        return OK
    if args.command == "serve":
        return _serve(args)
    if args.command == "schema":
        if args.what == "pack":
            _print_json(pack_schema())
        elif args.what == "result":
            _print_json(result_schema())
        else:
            _print_json(profile_schema(_recommender(args, args.rules).fields))
        return OK
    if args.rules_command in ("list", "show"):
        rec = _recommender(args, args.rules)
        if args.rules_command == "list":
            for rule in rec.rulebase.rules:
                mark = " [safety]" if rule.safety else ""
                _out(f"{rule.id}\t{rule.evidence}\t{rule.title}{mark}")
            return OK
        return _show(rec, args.id)
    try:
        extra, names = _packs(args, args.paths)
        rec = Recommender(extra, include_default=not args.no_default,
                          allow_safety_overrides=args.allow_safety_overrides, cache_size=0)
    except RuleError as exc:
        _err(str(exc))
        return USAGE if _input_problem(exc) else FAILED
    if args.rules_command == "check":
        _out(f"ok: {len(rec.rulebase.rules)} rules, {len(rec.rulebase.examples)} examples")
        for note in rec.rulebase.safety_overrides:
            _out(f"warning: {note}")
        return OK
    return _test(rec, names, args)


def _test(rec: Recommender, names: list[str], args: argparse.Namespace) -> int:
    report = run_examples(rec, names, keyword=args.keyword)
    if args.junit_xml:
        try:
            Path(args.junit_xml).write_text(report.junit_xml(), encoding="utf-8")
        except OSError as exc:
            raise _InputError(f"cannot write {args.junit_xml}: {exc.strerror or exc}") from exc
    empty = [name for name, count in report.packs if count == 0]
    coverage = report.coverage * 100
    if args.format == "json":
        _print_json(report.to_dict())
    else:
        _out(report.summary(verbose=args.verbose))
        for name in empty if not args.allow_empty else ():
            _out(f"no example ran from {name}" + (f" matching -k {args.keyword!r}" if args.keyword else "")
                 + ": a pack under test needs examples (pass --allow-empty to accept it)")
        if coverage < args.min_coverage:
            _out(f"rule coverage {coverage:.1f}% is below --min-coverage {args.min_coverage:g}%")
    failed = not report.ok or (empty and not args.allow_empty) or coverage < args.min_coverage
    return FAILED if failed else OK


def _serve(args: argparse.Namespace) -> int:
    try:
        from ._serve import server
    except ImportError as exc:
        raise _InputError(f"backcare serve needs the serve extra ({exc.name} is missing): "
                          "pip install 'backcare[serve]'") from exc
    rec = _recommender(args, args.rules, ranking=args.ranking)
    try:
        server(rec, host=args.host, port=args.port, max_body=args.max_body, access_log=args.access_log).run()
    except ValueError as exc:  # e.g. --max-body too small
        raise _InputError(str(exc)) from exc
    return OK


def _show(rec: Recommender, rule_id: str) -> int:
    from ._errors import did_you_mean

    rule = rec.rulebase.by_id.get(rule_id)
    if rule is None:
        raise _InputError(f"no rule {quote(rule_id)}{did_you_mean(rule_id, rec.rulebase.by_id)}")
    source = rec.rulebase.sources[rule.source]
    lines = [
        f"{rule.id}: {rule.title}" + (" [safety]" if rule.safety else ""),
        "  when:     " + "; ".join(c.describe() for c in rule.when),
        "  then:     " + rule.then.describe(),
        "  because:  " + rule.because,
        f"  source:   [{source.id}] {source.citation}",
        f"  evidence: {rule.evidence}",
    ]
    if source.passage:
        lines.append(f"  passage:  {source.passage}")
    if rule.untested:
        lines.append("  untested: no trial was found that tested this claim")
    if rule.caveat:
        lines.append(f"  caveat:   {rule.caveat}" + (f" [{rule.caveat_source}]" if rule.caveat_source else ""))
    if rule.safety:
        lines.append("  safety:   a safety rule: disabling or replacing it needs --allow-safety-overrides")
    elif rule.id in rec.rulebase.protected:
        needed = ", ".join(rec.rulebase.protected[rule.id].needed_by)
        lines.append(f"  safety:   protected: the safety rule(s) {needed} test a fact it derives, so disabling "
                     "or replacing it needs --allow-safety-overrides")
    if rule.origin:
        lines.append(f"  defined:  {rule.origin}")
    _out("\n".join(lines))
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``backcare`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (BackcareError, _InputError) as exc:
        _err(str(exc))
        return USAGE
    except BrokenPipeError:  # e.g. piped into head
        return OK
    except KeyboardInterrupt:
        _err("interrupted")
        return INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
