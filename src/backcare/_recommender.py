"""The :class:`Recommender`: a loaded rulebase with its engine, and the module-level shortcut.

A recommender is immutable once built: loading another pack means building
another recommender (durable-rules cannot replace a loaded ruleset, and a
result must never depend on what some other caller loaded).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Union

import attrs

from ._engine import Engine, Fact, fact_key, representable
from ._errors import EngineError, ProfileError, RuleError, did_you_mean
from ._inputs import input_facts
from ._loader import PackText, default_rules_path, effective_fields, load_with_sources, pack_digest
from ._model import RANKINGS, Contraindication, RedFlag, Rulebase
from ._profile import FieldSpec, Profile
from ._reasoning import build
from ._result import Provenance, Recommendation
from ._signature import Key, Part, Signatures, Template
from ._text import quote

ProfileLike = Union[Profile, Mapping[str, Any]]
PathLike = Union[str, "os.PathLike[str]"]


@attrs.frozen
class CacheInfo:
    """Counters of a recommender's result cache.

    ``hits`` counts results given without evaluating, ``misses`` the
    evaluations. Of the hits, ``signature_hits`` were profiles new to the
    cache whose signature (which conditions of the rules they meet) was not:
    the result was instantiated from the one evaluated for an earlier
    profile. Of the misses, ``assembled`` needed no run of the rules engine:
    each independent part of the rule graph the profile touches had been
    evaluated before with the same part signature. ``size`` is the number of
    profiles cached, ``signatures`` the number of signatures; each is
    bounded by ``maxsize``.
    """

    #: Results served from the cache (or repeated within one batch).
    hits: int
    #: Results that had to be evaluated.
    misses: int
    #: Results in the cache now.
    size: int
    #: The most it keeps (``cache_size``).
    maxsize: int
    #: Of the hits, those instantiated from another profile with the same signature.
    signature_hits: int = 0
    #: Signatures (which of the rules' conditions a profile meets) in the cache now.
    signatures: int = 0
    #: Of the misses, those assembled from parts of the rule graph seen before, with no engine run.
    assembled: int = 0


class Recommender:
    """Recommends techniques from the default rules plus any rule packs.

    ``rules`` lists extra packs (TOML files or directories of them), applied
    in order after the default pack. ``allow_safety_overrides`` lets a pack
    disable or replace safety rules, or what they depend on; every result
    then says so. ``ranking`` orders the recommended techniques: ``"seed"``
    by their whole score, the article's reasoning included, or
    ``"evidence"`` first by the points that rest on evidence of low quality
    or better; by default the last pack that sets ``[pack] ranking`` decides,
    else ``"seed"``. Results are cached (``cache_size`` of them; 0 turns the
    cache off) by the profile and by its signature, which of the rules'
    conditions it meets: profiles the rules cannot tell apart share one
    evaluation, and each gets a result with its own values in it.

    A recommender pickles by the text of its extra packs, read once when it
    was built, so it can be sent to a worker process or machine where those
    files do not exist; the worker re-reads the default pack from its own
    installed backcare, refuses if that differs from the one used here, and
    builds the engine once per process however many times it is unpickled.
    Unpickle recommenders only from sources you trust, as with any pickle:
    crafted bytes can build one with any rule text and with
    ``allow_safety_overrides=True``.

    The compiled rules live in durable-rules' C memory (about 0.6 MB for the
    default rules) until the recommender is closed, by :meth:`close`, a
    ``with`` block, or when it is garbage-collected. ``max_pack_bytes`` caps
    the size of each extra pack read from disk (default: the
    ``BACKCARE_MAX_PACK_BYTES`` environment variable, else 4 MiB).

    >>> rec = Recommender()
    >>> rec.recommend({"stiffness": True}).techniques[0].id
    'swedish_massage'
    """

    def __init__(
        self,
        rules: Sequence[PathLike | PackText] = (),
        *,
        include_default: bool = True,
        allow_safety_overrides: bool = False,
        cache_size: int = 1024,
        ranking: str | None = None,
        max_pack_bytes: int | None = None,
    ) -> None:
        if isinstance(rules, (str, os.PathLike, PackText)):
            rules = [rules]
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0, got {cache_size!r}")
        if ranking is not None and ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {', '.join(RANKINGS)}, got {ranking!r}"[:200]
                             + did_you_mean(str(ranking)[:100], RANKINGS))
        packs: list[Path | PackText] = [default_rules_path()] if include_default else []
        packs += [p if isinstance(p, PackText) else Path(p) for p in rules]
        #: The loaded rules, for inspection (``rulebase.rules``, ``rulebase.techniques``); its type is
        #: internal and may change.
        self.rulebase: Rulebase
        self.rulebase, texts = load_with_sources(packs, allow_safety_overrides=allow_safety_overrides,
                                                 max_pack_bytes=max_pack_bytes)
        # What __reduce__ sends: the extra packs' texts as parsed, plus a digest of the default pack.
        extra = texts[1:] if include_default else texts
        self._args = (extra, include_default, allow_safety_overrides, cache_size,
                      pack_digest(texts[0]) if include_default else "", ranking)
        #: The ranking policy in use: ``seed`` or ``evidence``.
        self.ranking: str = ranking or self.rulebase.ranking or "seed"
        #: What every result of this recommender names as its provenance.
        self.provenance = Provenance(self.rulebase.packs, self.ranking, self.rulebase.safety_overrides)
        self._fields = effective_fields(self.rulebase)
        try:
            self._engine = Engine(self.rulebase)
        except EngineError as exc:  # a pack the loader's checks let through: still the pack's fault
            raise RuleError(f"the rules engine refused this rulebase: {exc}") from exc
        # Frees the engine's C memory when this recommender is closed or collected.
        self._finalizer = weakref.finalize(self, self._engine.close)
        self._finalizer.atexit = False  # the process's memory goes with it
        self._cache: OrderedDict[Any, Recommendation] = OrderedDict()
        self._signatures: OrderedDict[Key, Template] = OrderedDict()
        self._parts: OrderedDict[Key, Part] = OrderedDict()  # what the engine did per part of the rule graph
        self._assembled = 0
        self._validated: dict[Any, Profile] = {}  # plain-dict inputs validated before (see profile())
        self._cache_lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._signature_hits = 0
        self._maxsize = cache_size

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle by rule content: a worker process rebuilds its own engine (once, see _rebuild).
        return (_rebuild, self._args)

    def __repr__(self) -> str:
        names = [p.name for p in self._args[0]]
        return f"Recommender(rules={names!r}, rules_loaded={len(self.rulebase.rules)})"

    def close(self) -> None:
        """Free the compiled rules now; any later recommendation raises :class:`EngineError`.

        Calling it again does nothing. A recommender that is garbage-collected
        is closed too: this is for code that builds many and wants the memory
        back at a known point.
        """
        self._finalizer()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return not self._finalizer.alive

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def fields(self) -> Mapping[str, FieldSpec]:
        """Every profile field this recommender accepts, pack-declared ones included."""
        return self._fields

    @property
    def engine_sessions(self) -> int:
        """Engine sessions alive right now; 0 between calls."""
        return self._engine.live_sessions

    def profile(self, profile: ProfileLike) -> Profile:
        """Validate ``profile`` against this recommender's fields and catalogues.

        With the cache on, a plain dict equal to one validated before (same
        keys, values of the same types) gives the profile validated then:
        validation is a function of the input alone. A bad profile is never
        remembered, so it is refused every time.
        """
        key = _input_key(profile) if self._maxsize else None
        if key is not None:
            found = self._validated.get(key)
            if found is not None:
                return found
        valid = self._validate(profile)
        if key is not None:
            with self._cache_lock:
                self._validated[key] = valid
                while len(self._validated) > self._maxsize:
                    del self._validated[next(iter(self._validated))]
        return valid

    def _validate(self, profile: ProfileLike) -> Profile:
        if isinstance(profile, Profile):
            valid = Profile.from_dict(profile.to_dict(), self._fields)
        elif isinstance(profile, Mapping):
            valid = Profile.from_dict(profile, self._fields)
        else:
            raise ProfileError(
                f"a profile must be a backcare.Profile or a mapping, got {type(profile).__name__}"
            )
        for name, value in valid.extra:  # core fields are bounded; pack fields may not be
            for item in value if isinstance(value, tuple) else (value,):
                if not representable(item):
                    raise ProfileError(
                        f"field {name!r}: {quote(item)} cannot be passed to the rules engine exactly "
                        "(numbers: at most 2**53 in size, not a single digit with an exponent such as "
                        "1e-05; strings: valid Unicode)",
                        field=name,
                    )
        return valid

    def recommend(self, profile: ProfileLike) -> Recommendation:
        """Rank techniques for one profile; see :func:`backcare.recommend`."""
        valid = self.profile(profile)
        if self._maxsize:  # the common case, a profile seen before, without the batch machinery
            key = _cache_key(valid)
            with self._cache_lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    self._hits += 1
                    return hit
        return self._recommend_profiles([valid])[0]

    def _evaluate(self, profile: Profile, facts: list[Fact] | None = None) -> Recommendation:
        if facts is None:
            facts = input_facts(self.rulebase, profile)
        trace = self._engine.evaluate(facts)
        return build(self.rulebase, profile.to_dict(), trace, self.provenance, self)

    def recommend_many(
        self, profiles: Iterable[ProfileLike], *, processes: int | None = None
    ) -> list[Recommendation]:
        """Recommend for many profiles, in input order.

        Every profile is validated first, so a bad one fails the batch before
        any work is done, naming its index. With the cache on, repeated
        profiles are evaluated once and each input counts once in
        :meth:`cache_info`: a hit if it was cached or seen earlier in this
        batch, else a miss. With ``cache_size=0`` nothing is reused: every
        input is evaluated and counts as a miss. With ``processes`` > 1 the
        profiles to evaluate are spread over that many local worker processes
        (spawned, each rebuilding its own engine from this recommender's rule
        texts); the results are the same as sequential ones.
        """
        if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int)
                                      or processes < 1):
            raise ValueError(f"processes must be an integer >= 1 or None, got {processes!r}")
        valid: list[Profile] = []
        for index, p in enumerate(profiles):
            try:
                valid.append(self.profile(p))
            except ProfileError as exc:
                raise ProfileError(f"profile #{index}: {exc}", field=exc.field) from exc
        return self._recommend_profiles(valid, processes)

    def _recommend_profiles(self, valid: list[Profile], processes: int | None = None) -> list[Recommendation]:
        """:meth:`recommend_many` on profiles this recommender has validated.

        Two caches, both bounded by ``cache_size``: results by profile, and
        results by signature (see ``_signature``). A profile found in
        neither is evaluated, the first of its signature in the batch only;
        the others with that signature are instantiated from its result.
        """
        if self.closed:
            raise EngineError("this Recommender is closed: build a new one")
        if not self._maxsize:
            with self._cache_lock:
                self._misses += len(valid)
            return self._evaluate_all(valid, processes)
        keys = [_cache_key(p) for p in valid]
        results: dict[Any, Recommendation] = {}
        todo: dict[Any, Profile] = {}
        hits = 0
        with self._cache_lock:
            for key, p in zip(keys, valid):
                if key in results or key in todo:
                    hits += 1
                    continue
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    results[key] = hit
                    hits += 1
                else:
                    todo[key] = p
        if not todo:
            with self._cache_lock:
                self._hits += hits
            return [results[k] for k in keys]

        # New profiles: by signature, computed outside the lock.
        signatures = self.rulebase.memo("signatures", Signatures)
        found: list[tuple[Any, Profile, list[Fact], tuple[Key, tuple[Fact, ...]] | None]] = []
        for key, p in todo.items():
            facts = input_facts(self.rulebase, p)
            found.append((key, p, facts, signatures.of(facts)))
        templates: dict[Key, Template] = {}
        evaluate: dict[Any, tuple[Profile, list[Fact]]] = {}  # one profile per new signature, or without one
        pending: set[Key] = set()
        with self._cache_lock:
            for key, p, facts, sig in found:
                if sig is None:
                    evaluate[key] = (p, facts)
                elif sig[0] not in templates and sig[0] not in pending:
                    template = self._signatures.get(sig[0])
                    if template is not None:
                        self._signatures.move_to_end(sig[0])
                        templates[sig[0]] = template
                    else:
                        pending.add(sig[0])
                        evaluate[key] = (p, facts)
        assembled = 0
        if (processes or 1) < 2 or len(evaluate) < 2:
            sigs = {key: sig for key, _, _, sig in found if key in evaluate}
            evaluated = []
            for key, (p, facts) in evaluate.items():
                result, from_parts = self._evaluate_new(p, facts, sigs[key], signatures)
                evaluated.append(result)
                assembled += from_parts
        else:
            evaluated = self._evaluate_all([p for p, _ in evaluate.values()], processes,
                                           [f for _, f in evaluate.values()])
        fresh = dict(zip(evaluate, evaluated))
        signature_hits = 0
        for key, p, facts, sig in found:
            if key in fresh:
                results[key] = fresh[key]
                if sig is not None and sig[0] not in templates:
                    templates[sig[0]] = Template(fresh[key], sig[0], sig[1])
                continue
            assert sig is not None
            results[key] = templates[sig[0]].instantiate(signatures, p.to_dict(), sig[1], self)
            signature_hits += 1
        with self._cache_lock:
            self._hits += hits + signature_hits
            self._misses += len(fresh)
            self._signature_hits += signature_hits
            self._assembled += assembled
            for key in todo:
                self._remember(self._cache, key, results[key])
            for sig_key, template in templates.items():
                self._remember(self._signatures, sig_key, template)
        return [results[k] for k in keys]

    def _evaluate_new(self, profile: Profile, facts: list[Fact], sig: tuple[Key, tuple[Fact, ...]] | None,
                      signatures: Signatures) -> tuple[Recommendation, bool]:
        """Evaluate a profile whose signature is new; True with it if no engine run was needed.

        Where every part of the rule graph the profile touches was seen in
        an earlier evaluation with the same part signature, the trace is
        assembled from those parts (the engine would do the same, part by
        part); otherwise the engine runs, and its trace is cut into parts
        for later profiles.
        """
        if sig is not None:
            cut = signatures.parts(*sig)
            known: list[tuple[Part, tuple[Fact, ...]]] = []
            with self._cache_lock:
                for sub, slots in cut.items():
                    part = self._parts.get(sub)
                    if part is None:
                        break
                    known.append((part, slots))
                else:
                    for sub in cut:
                        self._parts.move_to_end(sub)
            if len(known) == len(cut):
                trace = signatures.assemble(known, facts)
                return build(self.rulebase, profile.to_dict(), trace, self.provenance, self), True
        trace = self._engine.evaluate(facts)
        result = build(self.rulebase, profile.to_dict(), trace, self.provenance, self)
        if sig is not None:
            parts = signatures.split(trace, *sig)
            if parts:
                with self._cache_lock:
                    for sub, part in parts.items():
                        self._remember(self._parts, sub, part)
        return result, False

    def _remember(self, cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        """Put ``value`` in an LRU ``cache`` (the caller holds the lock)."""
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._maxsize:
            cache.popitem(last=False)

    def _evaluate_all(self, profiles: list[Profile], processes: int | None,
                      facts: list[list[Fact]] | None = None) -> list[Recommendation]:
        """Evaluate validated profiles in order, here or over ``processes`` local processes.

        ``facts`` are their input facts, where the caller has them already.
        """
        if (processes or 1) < 2 or len(profiles) < 2:
            if facts is None:
                return [self._evaluate(p) for p in profiles]
            return [self._evaluate(p, f) for p, f in zip(profiles, facts)]
        workers = min(processes or 1, len(profiles))
        chunk = max(1, len(profiles) // (workers * 4))
        # spawn, not fork: the worker rebuilds its engine from the rule texts
        # rather than inheriting a durable-rules host (and maybe a held lock).
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(self,))
        try:
            # Ctrl-C at a terminal reaches every process of the group. The
            # workers start (inside map) with SIGINT blocked, which they keep:
            # the parent stops them, so none prints a traceback of its own,
            # even when interrupted while still starting up. A Ctrl-C meant
            # for the parent in that moment arrives as soon as map returns.
            blocked = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
            if blocked:
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                results = pool.map(_worker_recommend, profiles, chunksize=chunk)
            finally:
                if blocked:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            out = list(results)
            for result in out:  # results cross processes without their recommender: this one made them
                object.__setattr__(result, "_recommender", self)
            return out
        except BaseException:
            # Ctrl-C or a failure: stop the workers now rather than let them
            # finish every queued chunk first, and leave none behind.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the result cache."""
        with self._cache_lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._maxsize, self._signature_hits,
                             len(self._signatures), self._assembled)

    def cache_clear(self) -> None:
        """Empty the result cache and reset its counters."""
        with self._cache_lock:
            self._cache.clear()
            self._signatures.clear()
            self._parts.clear()
            self._validated.clear()
            self._hits = self._misses = self._signature_hits = self._assembled = 0

    def red_flags(self) -> list[RedFlag]:
        """The red-flag catalogue, sorted by id."""
        return list(self.rulebase.red_flags.values())

    def conditions(self) -> list[Contraindication]:
        """The contraindication catalogue, sorted by id."""
        return list(self.rulebase.contraindications.values())


def _input_key(data: object) -> Any:
    """A key for a plain dict profile, equal only for dicts that validate alike; None if there is none.

    Values are keyed with their type, so ``1``, ``1.0`` and ``True`` differ,
    and floats by their text, so ``0.0`` and ``-0.0`` do; a dict holding
    anything else (another mapping, a set, an object) gets no key and is
    validated in full.
    """
    if type(data) is not dict:
        return None
    out = []
    for name, value in data.items():
        kind = type(value)
        if kind is float:
            value = repr(value)
        elif kind is list or kind is tuple:
            value = tuple((type(x), repr(x) if type(x) is float else x) for x in value)
        elif kind not in _KEYED:
            return None
        out.append((name, kind, value))
    key = tuple(out)
    try:
        hash(key)
    except TypeError:  # an unhashable item in a list
        return None
    return key


_KEYED = frozenset({bool, int, str, type(None)})


def _cache_key(profile: Profile) -> Any:
    """The cache key of a validated profile.

    Profiles compare with Python equality, where 1 == 1.0 and 0.0 == -0.0: a
    pack's number field given 1 and 1.0 would share a result whose
    ``profile`` shows the other value. Core fields have one type each; pack
    fields carry theirs.
    """
    if not profile.extra:
        return profile
    return (profile, tuple(fact_key((name, value)) for name, value in profile.extra if not isinstance(value, tuple)))




_rebuilt: OrderedDict[tuple[Any, ...], Recommender] = OrderedDict()
_rebuilt_lock = threading.Lock()
_REBUILT_MAX = 8


def _rebuild(
    packs: tuple[PackText, ...], include_default: bool, allow: bool, cache_size: int, default_digest: str,
    ranking: str | None = None,
) -> Recommender:
    """Unpickle a recommender: built once per process for each distinct content.

    A Dask task or a process-pool chunk unpickles its recommender every time;
    the memo makes that a dictionary lookup after the first.
    """
    key = (packs, include_default, allow, cache_size, default_digest, ranking)
    with _rebuilt_lock:
        hit = _rebuilt.get(key)
        if hit is not None and not hit.closed:
            _rebuilt.move_to_end(key)
            return hit
        rec = Recommender(
            list(packs), include_default=include_default, allow_safety_overrides=allow, cache_size=cache_size,
            ranking=ranking,
        )
        if rec._args[4] != default_digest:
            raise RuleError(
                "cannot rebuild this recommender here: the default rule pack installed in this process "
                f"({default_rules_path()}) differs from the one it was built with; install the same "
                "backcare version on every worker"
            )
        _rebuilt[key] = rec
        while len(_rebuilt) > _REBUILT_MAX:
            _rebuilt.popitem(last=False)
        return rec


_worker: Recommender | None = None


def _worker_init(recommender: Recommender) -> None:
    global _worker
    _worker = recommender
    # Where the signal mask was not inherited (see _evaluate_all), ignore
    # Ctrl-C here: the parent stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_recommend(profile: Profile) -> Recommendation:
    assert _worker is not None
    return _worker._evaluate(profile)


_default: Recommender | None = None
_default_lock = threading.Lock()


def default_recommender() -> Recommender:
    """The shared recommender over the default rules, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Recommender()
    return _default


def recommend(profile: ProfileLike) -> Recommendation:
    """Rank massage techniques for a back-pain profile, with reasons and safety checks.

    ``profile`` is a :class:`~backcare.Profile` or a plain mapping of the same
    fields. Bad input raises :class:`~backcare.ProfileError` naming the field.

    >>> result = recommend({"pain_weeks": 20, "tight_bands": True})
    >>> result.techniques[0].id
    'trigger_point_therapy'
    >>> result.referral is None
    True
    """
    return default_recommender().recommend(profile)


def red_flags() -> list[RedFlag]:
    """The red-flag catalogue of the default rules, for building forms.

    >>> [f.id for f in red_flags() if f.urgency == "emergency"][:2]
    ['bilateral_leg_symptoms', 'faecal_incontinence']
    """
    return default_recommender().red_flags()


def conditions() -> list[Contraindication]:
    """The contraindication catalogue of the default rules, for building forms."""
    return default_recommender().conditions()
