"""FHIR R4 prefetch in, a backcare profile out: what the record says, and what it does not.

The code map is data (``fhir_codes.toml`` beside this module); this module
only applies it. Resources are parsed and validated by ``fhir.resources``'
R4B models. ``fhir.resources`` 8 has no R4 module (its default models are
R5), and R4B changes only the medication-definition, evidence-based-medicine
and subscription parts of R4: implementers of the rest "can continue to use
either R4 or R4B without any functional difference"
(https://hl7.org/fhir/R4B/r4b-explanation.html), so R4 Patients, Conditions,
Observations, MedicationStatements and Bundles parse unchanged.

Nothing here guesses. A code the map does not hold, a date that does not
give one answer, a resource whose status says it no longer applies: each is
listed in :attr:`Reading.unknown` or :attr:`Reading.unused` with the reason,
for the card to show, and contributes nothing to the profile.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sys
from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib import resources
from typing import Any

import attrs
import pydantic
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from .._errors import ProfileError, RuleError
from .._profile import FieldSpec, Profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CODES_FILE = "fhir_codes.toml"

#: Systems the map may use, with the names people know them by.
SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://loinc.org": "LOINC",
}

#: Condition clinical statuses that mean "not now" (http://hl7.org/fhir/R4/valueset-condition-clinical.html).
CONDITION_NOT_NOW = frozenset({"inactive", "remission", "resolved"})
#: Verification statuses that mean "not so" (http://hl7.org/fhir/R4/valueset-condition-ver-status.html).
CONDITION_NOT_SO = frozenset({"refuted", "entered-in-error"})
#: MedicationStatement statuses under which the person may be taking the medicine.
MEDICATION_MAY_TAKE = frozenset({"active", "intended", "on-hold", "unknown"})
#: Observation statuses whose value stands.
OBSERVATION_FINAL = frozenset({"final", "amended", "corrected"})


class FHIRError(ValueError):
    """A prefetch that is not valid FHIR, or is about someone else: a 400 for the client."""


@attrs.frozen
class Source:
    id: str
    label: str
    url: str


@attrs.frozen
class CodeEntry:
    """One ``[[map]]`` entry: codes of one system and resource type, and what they give."""

    resource: str
    system: str
    codes: tuple[tuple[str, str], ...]
    sets: tuple[tuple[str, Any], ...]
    source: str
    onset: str | None = None
    history: bool = False
    note: str | None = None

    def display_of(self, code: str) -> str:
        """The display the source gives for ``code``."""
        return dict(self.codes).get(code, "")


@attrs.frozen
class PainCode:
    field: str
    system: str
    code: str
    display: str
    source: str


@attrs.frozen
class CodeMap:
    """The loaded ``fhir_codes.toml``, checked against a recommender's fields."""

    maps: tuple[CodeEntry, ...]
    pain: PainCode
    sources: Mapping[str, Source]
    index: Mapping[tuple[str, str, str], CodeEntry] = attrs.field(eq=False, repr=False)

    @classmethod
    def load(cls, fields: Mapping[str, FieldSpec], text: str | None = None) -> CodeMap:
        """Read the shipped map (or ``text``) and refuse it unless every entry fits ``fields``."""
        where = f"backcare/_serve/{CODES_FILE}"
        if text is None:
            text = resources.files("backcare._serve").joinpath(CODES_FILE).read_text(encoding="utf-8")
        data = tomllib.loads(text)
        problems: list[str] = []
        sources = {s["id"]: Source(s["id"], s["label"], s["url"]) for s in data.get("source", [])}
        pain = PainCode(**data["pain"])
        if pain.field not in fields:
            problems.append(f"[pain] field {pain.field!r} is not a profile field")
        if pain.source not in sources:
            problems.append(f"[pain] source {pain.source!r} is not defined")
        maps: list[CodeEntry] = []
        index: dict[tuple[str, str, str], CodeEntry] = {}
        for n, raw in enumerate(data.get("map", []), 1):
            entry = CodeEntry(
                resource=raw["resource"], system=raw["system"],
                codes=tuple((str(c), str(d)) for c, d in raw["codes"]),
                sets=tuple(sorted(raw.get("sets", {}).items())), source=raw["source"],
                onset=raw.get("onset"), history=bool(raw.get("history", False)), note=raw.get("note"),
            )
            here = f"[[map]] #{n} ({entry.resource}, {entry.system})"
            if entry.resource not in ("Condition", "MedicationStatement"):
                problems.append(f"{here}: resource must be Condition or MedicationStatement")
            if entry.system not in SYSTEM_NAMES:
                problems.append(f"{here}: unknown system")
            if entry.source not in sources:
                problems.append(f"{here}: source {entry.source!r} is not defined")
            if entry.onset is not None and (entry.onset not in fields or fields[entry.onset].type != "int"):
                problems.append(f"{here}: onset field {entry.onset!r} is not an integer profile field")
            if not entry.sets and entry.onset is None:
                problems.append(f"{here}: gives nothing (no sets, no onset)")
            try:
                Profile.from_dict(dict(entry.sets), fields)
            except ProfileError as exc:
                problems.append(f"{here}: sets: {exc}")
            for code, _ in entry.codes:
                key = (entry.resource, entry.system, code)
                if key in index:
                    problems.append(f"{here}: code {code} is already mapped by another entry")
                index[key] = entry
            maps.append(entry)
        if problems:
            raise RuleError(f"{where}: " + "; ".join(problems))
        return cls(tuple(maps), pain, sources, index)

    def lookup(self, resource: str, system: str | None, code: str | None) -> CodeEntry | None:
        if system is None or code is None:
            return None
        return self.index.get((resource, system, code))

    def prefetch_observation_query(self) -> str:
        return f"code={self.pain.system}|{self.pain.code}"


@attrs.frozen
class Reading:
    """What a CDS Hooks prefetch gave: a profile, and an account of every resource in it."""

    profile: Mapping[str, Any]
    used: tuple[str, ...]
    unknown: tuple[str, ...]
    unused: tuple[str, ...]


def parse_prefetch(prefetch: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """Validate each prefetch value with the FHIR models; ``keys`` maps prefetch key to resource type.

    A value may be ``null`` (the client had no data), the resource itself, or a
    searchset Bundle. Anything else is a :class:`FHIRError` naming the key and
    the element at fault.
    """
    parsed: dict[str, Any] = {}
    for key, kind in keys.items():
        value = prefetch.get(key)
        if value is None:
            parsed[key] = None
            continue
        if not isinstance(value, dict):
            raise FHIRError(f"prefetch {key!r}: expected a FHIR resource or null, got {type(value).__name__}")
        model: Any = Patient if kind == "Patient" else Bundle
        if value.get("resourceType") != model.__name__:
            raise FHIRError(f"prefetch {key!r}: expected a {model.__name__} resource, "
                            f"got resourceType {value.get('resourceType')!r}")
        try:
            parsed[key] = model.model_validate(value)
        except pydantic.ValidationError as exc:
            raise FHIRError(f"prefetch {key!r} is not valid FHIR R4: {_pydantic_message(exc)}") from exc
    return parsed


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(resource)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def read(
    parsed: Mapping[str, Any], patient_id: str, codes: CodeMap, fields: Mapping[str, FieldSpec], today: dt.date
) -> Reading:
    """Map validated prefetch to a profile, keeping an account of what was and was not used."""
    used: list[str] = []
    unknown: list[str] = []
    unused: list[str] = []
    profile: dict[str, Any] = {}
    lists: dict[str, set[str]] = {}
    onsets: list[tuple[dt.date, str, str]] = []  # (latest possible onset, field, why)
    pains: list[tuple[Any, int, str]] = []

    resources_: list[Any] = []
    for value in parsed.values():
        if value is None:
            continue
        if isinstance(value, Patient):
            _check_patient(value, patient_id)
            _read_age(value, fields, today, profile, used, unused)
            continue
        for entry in value.entry or ():
            if entry.resource is not None:
                resources_.append(entry.resource)

    for res in sorted(resources_, key=_resource_key):
        kind = type(res).__name__
        label = f"{kind} {res.id}" if res.id else kind
        if kind not in ("Condition", "MedicationStatement", "Observation"):
            if kind != "OperationOutcome":
                unused.append(f"{label}: not a resource backcare reads")
            continue
        _check_subject(res, label, patient_id)
        if isinstance(res, Observation):
            _read_observation(res, label, codes, fields, pains, unknown, unused)
            continue
        concept = res.code if isinstance(res, Condition) else res.medicationCodeableConcept
        if concept is None:
            unused.append(f"{label}: the medicine is given by reference, not by code; not read")
            continue
        codings = [c for c in concept.coding or () if c.code]
        hits = [(c, codes.lookup(kind, c.system, c.code)) for c in codings]
        found = [(c, m) for c, m in hits if m is not None]
        if not found:
            if not codings:
                unknown.append(f"{label}: no code" + (f" (text: {concept.text!r})" if concept.text else ""))
            for c in codings:
                unknown.append(f"{label}: {_coding(c.system, c.code, c.display)}")
            continue
        for c, m in found:
            why = _not_current(res, m)
            if why:
                unused.append(f"{label}: {_coding(c.system, c.code, m.display_of(str(c.code)))}: {why}")
                continue
            for name, value in m.sets:
                if isinstance(value, list):
                    lists.setdefault(name, set()).update(value)
                elif name in profile and profile[name] != value:
                    raise ProfileError(f"{label} sets {name} = {value!r}, but the record already gave "
                                       f"{profile[name]!r}", field=name)
                else:
                    profile[name] = value
            gives = ", ".join(_show_set(n, v) for n, v in m.sets)
            if m.onset:
                onset = _onset(res)
                if onset is None:
                    unused.append(f"{label}: no onset date, so {m.onset} is not known from it")
                else:
                    weeks = _whole_weeks(onset, today)
                    if isinstance(weeks, str):
                        unused.append(f"{label}: onset {onset[2]}: {weeks}; {m.onset} not known from it")
                    else:
                        onsets.append((onset[1], m.onset, f"{label}: onset {onset[2]}"))
                        gives = ", ".join(filter(None, [gives, f"onset {onset[2]}"]))
            used.append(f"{label}: {_coding(c.system, c.code, m.display_of(str(c.code)))}: {gives}")
    for name, values in sorted(lists.items()):
        profile[name] = sorted(values)
    if onsets:
        # The current episode is the one that began last.
        latest = max(onsets)
        weeks = _whole_weeks(_exact(latest[0]), today)
        assert isinstance(weeks, int)
        profile[latest[1]] = weeks
        used.append(f"{latest[2]} gives {latest[1]} = {weeks}")
    if pains:
        # The latest reading; at equal times, the higher (the safer) one.
        _, value, label = max(pains, key=lambda p: (p[0], p[1]))
        profile[codes.pain.field] = value
        used.append(f"{label} gives {codes.pain.field} = {value}")
    return Reading(dict(sorted(profile.items())), tuple(used), tuple(unknown), tuple(unused))


def _resource_key(res: Any) -> tuple[str, str]:
    return (type(res).__name__, res.id or "")


def _coding(system: str | None, code: str | None, display: str | None) -> str:
    name = SYSTEM_NAMES.get(system or "", system or "no system")
    return f"{name} {code}" + (f" {display!r}" if display else "")


def _show_set(name: str, value: Any) -> str:
    if isinstance(value, list):
        return f"{name}: {', '.join(value)}"
    return f"{name} = {'true' if value is True else 'false' if value is False else value}"


def _check_patient(patient: Patient, patient_id: str) -> None:
    if patient.id is not None and patient.id != patient_id:
        raise FHIRError(f"prefetch Patient {patient.id} is not the patient in context (patientId {patient_id})")


def _check_subject(res: Any, label: str, patient_id: str) -> None:
    subject = getattr(res, "subject", None)
    ref = subject.reference if subject is not None else None
    if ref is None:
        raise FHIRError(f"{label} does not say whose it is (no subject reference)")
    if not (ref == f"Patient/{patient_id}" or ref.endswith(f"/Patient/{patient_id}")):
        raise FHIRError(f"{label} is about {ref}, not the patient in context (Patient/{patient_id})")


def _not_current(res: Any, m: CodeEntry) -> str | None:
    """Why a mapped resource does not apply now, or None if it does."""
    if isinstance(res, Condition):
        ver = _code_of(res.verificationStatus)
        if ver in CONDITION_NOT_SO:
            return f"verification status {ver}"
        clinical = _code_of(res.clinicalStatus)
        if clinical in CONDITION_NOT_NOW and not m.history:
            return f"clinical status {clinical}"
        return None
    status = res.status
    if status not in MEDICATION_MAY_TAKE:
        return f"status {status}"
    return None


def _code_of(concept: Any) -> str | None:
    if concept is None:
        return None
    for c in concept.coding or ():
        if c.code:
            return str(c.code)
    return None


def _read_observation(
    obs: Observation, label: str, codes: CodeMap, fields: Mapping[str, FieldSpec],
    pains: list[tuple[Any, int, str]], unknown: list[str], unused: list[str],
) -> None:
    codings = [c for c in obs.code.coding or () if c.code]
    if not any(c.system == codes.pain.system and c.code == codes.pain.code for c in codings):
        for c in codings or ():
            unknown.append(f"{label}: {_coding(c.system, c.code, c.display)}")
        if not codings:
            unknown.append(f"{label}: no code")
        return
    what = _coding(codes.pain.system, codes.pain.code, codes.pain.display)
    if obs.status not in OBSERVATION_FINAL:
        unused.append(f"{label}: {what}: status {obs.status}")
        return
    raw: Any = obs.valueInteger
    if raw is None and obs.valueQuantity is not None:
        raw = obs.valueQuantity.value
    if raw is None:
        unused.append(f"{label}: {what}: no numeric value")
        return
    if isinstance(raw, Decimal):
        raw = int(raw) if raw == raw.to_integral_value() else float(raw)
    try:
        value = fields[codes.pain.field].validate(raw, codes.pain.field)
    except ProfileError as exc:
        unused.append(f"{label}: {what}: {exc}")
        return
    assert isinstance(value, int)
    when = obs.effectiveDateTime or obs.effectiveInstant or (
        obs.effectivePeriod.start if obs.effectivePeriod is not None else None)
    key = _sortable(when)
    pains.append((key, value, label))


def _sortable(when: Any) -> tuple[int, str]:
    """Order effective times; a reading without one sorts before every dated one."""
    if when is None:
        return (0, "")
    if isinstance(when, dt.datetime):
        if when.tzinfo is not None:
            when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return (1, when.isoformat())
    if isinstance(when, dt.date):
        return (1, when.isoformat())
    return (1, str(when))


def _date_range(value: Any) -> tuple[dt.date, dt.date] | None:
    """The earliest and latest calendar day a FHIR date or dateTime can mean."""
    if isinstance(value, dt.datetime):
        return value.date(), value.date()
    if isinstance(value, dt.date):
        return value, value
    if isinstance(value, str):
        parts = value.split("-")
        try:
            year = int(parts[0])
            if len(parts) == 1:
                return dt.date(year, 1, 1), dt.date(year, 12, 31)
            if len(parts) == 2:
                month = int(parts[1])
                return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])
        except ValueError:
            return None
    return None


def _exact(day: dt.date) -> tuple[dt.date, dt.date, str]:
    return day, day, day.isoformat()


def _onset(res: Any) -> tuple[dt.date, dt.date, str] | None:
    raw = res.onsetDateTime
    if raw is None and res.onsetPeriod is not None:
        raw = res.onsetPeriod.start
    rng = _date_range(raw)
    if rng is None:
        return None
    return rng[0], rng[1], raw.isoformat() if isinstance(raw, (dt.date, dt.datetime)) else str(raw)


def _whole_weeks(onset: tuple[dt.date, dt.date, str], today: dt.date) -> int | str:
    earliest, latest, _ = onset
    if latest > today:
        return "in the future"
    most, least = (today - earliest).days // 7, (today - latest).days // 7
    if most != least:
        return f"a partial date: anywhere from {least} to {most} weeks ago"
    return least


def _age(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _read_age(
    patient: Patient, fields: Mapping[str, FieldSpec], today: dt.date, profile: dict[str, Any],
    used: list[str], unused: list[str],
) -> None:
    label = f"Patient {patient.id}" if patient.id else "Patient"
    if patient.birthDate is None:
        unused.append(f"{label}: no birthDate, so age is not known")
        return
    shown = patient.birthDate.isoformat() if isinstance(patient.birthDate, dt.date) else str(patient.birthDate)
    rng = _date_range(patient.birthDate)
    if rng is None:
        unused.append(f"{label}: birthDate {shown} is not a date")
        return
    oldest, youngest = _age(rng[0], today), _age(rng[1], today)
    if rng[1] > today:
        unused.append(f"{label}: birthDate {shown} is in the future")
        return
    if oldest != youngest:
        unused.append(f"{label}: birthDate {shown} is a partial date: the age is {youngest} or {oldest}; not used")
        return
    try:
        profile["age"] = fields["age"].validate(oldest, "age")
    except ProfileError as exc:
        unused.append(f"{label}: birthDate {shown}: {exc}")
        return
    used.append(f"{label}: birthDate {shown} gives age = {oldest}")


def describe_sets(sets: Iterable[tuple[str, Any]], onset: str | None) -> str:
    """In words, what a map entry gives, for the docs and cards."""
    parts = [_show_set(n, v) for n, v in sets]
    if onset:
        parts.append(f"{onset} from its onset date")
    return "; ".join(parts)
