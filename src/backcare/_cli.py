"""The ``backcare`` command: recommend from JSON, inspect, check and test rule packs.

Exit codes: 0 ok, 1 a check or test failed, 2 bad input or usage. Errors go
to stderr as one message, never a traceback, because the people reading them
are rule authors and operators, not backcare's developers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ._errors import BackcareError, RuleError
from ._loader import default_rules_path
from ._model import RANKINGS
from ._recommender import Recommender
from ._result import clean
from ._ruletest import run_examples
from ._schema import profile_schema, result_schema

OK, FAILED, USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"backcare: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    rules_help = "add a rule pack (a .toml file or a directory of them); repeatable"
    p = _Parser(prog="backcare", description="Ranked, explained massage techniques for back pain. "
                "Information, not medical advice.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    rec = sub.add_parser("recommend", help="recommend techniques for a profile in a JSON file ('-' for stdin)")
    rec.add_argument("profile", help="path to a JSON profile, or - to read standard input")
    rec.add_argument("--json", action="store_true", help="print the result as JSON (Recommendation.to_dict())")
    rec.add_argument("--rules", action="append", default=[], metavar="PATH", help=rules_help)
    rec.add_argument("--allow-safety-overrides", action="store_true",
                     help="let rule packs disable or replace safety rules (results then say so)")
    rec.add_argument("--ranking", choices=RANKINGS, default=None,
                     help="order techniques by the whole score (seed) or by the evidence-backed points "
                          "first (evidence); default: what the packs ask for, else seed")
    rec.add_argument("--why-not", metavar="TECHNIQUE", action="append", default=[],
                     help="also say why a technique is not recommended (excluded, demoted, or the nearest "
                          "rules that would have scored it); repeatable")
    rec.add_argument("--what-if", action="store_true",
                     help="also list the single-field changes that would change the top technique or the referral")

    rules = sub.add_parser("rules", help="list, show, check and test rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True, parser_class=_Parser)
    lst = rsub.add_parser("list", help="list the rules in use")
    lst.add_argument("--rules", action="append", default=[], metavar="PATH", help=rules_help)
    show = rsub.add_parser("show", help="show one rule")
    show.add_argument("id")
    show.add_argument("--rules", action="append", default=[], metavar="PATH", help=rules_help)
    chk = rsub.add_parser("check", help="validate rule packs on top of the default rules")
    chk.add_argument("paths", nargs="+", metavar="PATH")
    tst = rsub.add_parser("test", help="run the examples in rule packs and report rule coverage")
    tst.add_argument("paths", nargs="+", metavar="PATH")

    sch = sub.add_parser("schema", help="print the JSON Schema of a profile or a result")
    sch.add_argument("what", choices=["profile", "result"])
    sch.add_argument("--rules", action="append", default=[], metavar="PATH", help=rules_help)

    srv = sub.add_parser("serve", help="serve the CDS Hooks endpoint, JSON API and intake page (the serve extra)")
    srv.add_argument("--rules", action="append", default=[], metavar="PATH", help=rules_help)
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    srv.add_argument("--allow-safety-overrides", action="store_true",
                     help="let rule packs disable or replace safety rules (results then say so)")
    srv.add_argument("--max-body", type=int, default=1_048_576, metavar="BYTES",
                     help="largest request body accepted (default 1048576)")
    srv.add_argument("--access-log", action="store_true",
                     help="log each request's method, path and status (never its body); off by default")
    return p


def _packs(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split paths into extra packs and the pack names to test; the default pack is never loaded twice."""
    default = default_rules_path().resolve()
    extra = [p for p in paths if Path(p).resolve() != default]
    names = [str(default) if Path(p).resolve() == default else p for p in paths]
    return extra, names


def _read_profile(arg: str) -> Any:
    try:
        text = sys.stdin.read() if arg == "-" else Path(arg).read_text(encoding="utf-8")
    except OSError as exc:
        raise _InputError(f"cannot read profile {arg}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _InputError(f"{arg}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc


class _InputError(Exception):
    pass


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def _run(args: argparse.Namespace) -> int:
    if args.command == "recommend":
        profile = _read_profile(args.profile)
        rec = Recommender(args.rules, allow_safety_overrides=args.allow_safety_overrides, ranking=args.ranking)
        result = rec.recommend(profile)
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
        print(result.explain())
        for w in why_not:
            print(f"\nWhy not {w.name}?\n{clean(str(w))}")
        if what_if is not None:
            print("\nWhat if? Single changes that would change the top technique or the referral:")
            print("\n".join(f"- {clean(str(w))}" for w in what_if) or "- none")
        return OK
    if args.command == "serve":
        return _serve(args)
    if args.command == "schema":
        rec = Recommender(args.rules)
        _print_json(profile_schema(rec.fields) if args.what == "profile" else result_schema())
        return OK
    if args.rules_command in ("list", "show"):
        rec = Recommender(args.rules)
        if args.rules_command == "list":
            for rule in rec.rulebase.rules:
                mark = " [safety]" if rule.safety else ""
                print(f"{rule.id}\t{rule.evidence}\t{rule.title}{mark}")
            return OK
        return _show(rec, args.id)
    extra, names = _packs(args.paths)
    if args.rules_command == "check":
        try:
            rec = Recommender(extra)
        except RuleError as exc:
            print(f"backcare: {exc}", file=sys.stderr)
            return FAILED
        print(f"ok: {len(rec.rulebase.rules)} rules, {len(rec.rulebase.examples)} examples")
        return OK
    try:
        rec = Recommender(extra, cache_size=0)
    except RuleError as exc:
        print(f"backcare: {exc}", file=sys.stderr)
        return FAILED
    report = run_examples(rec, names)
    print(report.summary())
    return OK if report.ok else FAILED


def _serve(args: argparse.Namespace) -> int:
    try:
        from ._serve import run
    except ImportError as exc:
        raise _InputError(f"backcare serve needs the serve extra ({exc.name} is missing): "
                          "pip install 'backcare[serve]'") from exc
    try:
        run(args.rules, host=args.host, port=args.port, allow_safety_overrides=args.allow_safety_overrides,
            max_body=args.max_body, access_log=args.access_log)
    except ValueError as exc:  # e.g. --max-body too small; a ProfileError is a ValueError too, but none arises here
        raise _InputError(str(exc)) from exc
    return OK


def _show(rec: Recommender, rule_id: str) -> int:
    from ._errors import did_you_mean

    rule = rec.rulebase.by_id.get(rule_id)
    if rule is None:
        raise _InputError(f"no rule {rule_id!r}{did_you_mean(rule_id, rec.rulebase.by_id)}")
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
    print("\n".join(lines))
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``backcare`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (BackcareError, _InputError) as exc:
        message = str(exc)
        print(f"backcare: error: {message}", file=sys.stderr)
        return USAGE
    except BrokenPipeError:  # e.g. piped into head
        return OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
