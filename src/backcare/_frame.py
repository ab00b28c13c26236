"""Recommendations for a whole table of profiles: pandas here, Dask on a cluster.

Needs the ``dask`` extra (``pip install backcare[dask]``): pandas, and
dask[dataframe] with distributed for Dask frames. Nothing here imports them
until :func:`recommend_frame` is called, so ``import backcare`` stays light.

Each row is one profile. Its profile columns are read as fields, where a
missing value (``None``, ``NaN``, ``pd.NA``, ``NaT``) means "not given", as
``None`` does in :func:`backcare.recommend`. Because pandas stores an integer
column holding any missing value as floats, an ``int`` field accepts a float
that is a whole number (``40.0`` is read as ``40``); any other float in an
``int`` field is an error naming the row and field, never rounded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._errors import ProfileError, did_you_mean
from ._profile import FieldSpec, Profile
from ._recommender import Recommender, default_recommender
from ._text import quote

#: The result columns appended to the frame, in this order.
RESULT_COLUMNS: tuple[str, ...] = (
    "top_technique", "top_evidence", "top_score_by_evidence", "technique_ids", "referral_urgency", "result_json",
)

_INSTALL = "pip install backcare[dask]"


def recommend_frame(
    frame: Any,
    recommender: Recommender | None = None,
    *,
    columns: Sequence[str] | None = None,
    result_json: bool = True,
) -> Any:
    """Recommend for every row of a pandas or Dask DataFrame of profiles.

    Returns the frame with six columns added (five with
    ``result_json=False``): ``top_technique`` (the best
    technique's id, or None), ``top_evidence`` and ``top_score_by_evidence``
    (its evidence level, the weakest link of its support, and its score split
    by evidence level, as a dict), ``technique_ids`` (every recommended id,
    best first), ``referral_urgency`` (``emergency``, ``urgent``, ``routine``
    or None) and ``result_json`` (the whole result, exactly
    :meth:`~backcare.Recommendation.to_json`). A pandas frame gives a pandas
    frame, computed now; a Dask frame gives a lazy Dask frame, computed where
    its partitions are (for example on a ``dask.distributed`` cluster), each
    worker process building its recommender once.

    By default every column must be a profile field, so a misspelt column is
    an error rather than an ignored answer; ``columns`` names the profile
    columns instead, and any other column is carried through unchanged. The
    default recommender is used unless ``recommender`` is given.

    ``result_json=False`` leaves the ``result_json`` column out, for when
    the other columns are all a caller needs. Writing each distinct result
    as JSON costs more than evaluating it once results repeat, and on a
    cluster every row's text travels back to the client: on the benchmark
    cohort, one Dask worker more than doubles its throughput without it (see
    ``benchmarks/RESULTS.md``).

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"pain_weeks": [20, None], "tight_bands": [True, None]})
    >>> out = recommend_frame(frame)
    >>> out[["pain_weeks", "top_technique", "referral_urgency"]]
       pain_weeks          top_technique referral_urgency
    0        20.0  trigger_point_therapy             None
    1         NaN                   None             None
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(f"backcare.recommend_frame needs pandas (and Dask for Dask frames): {_INSTALL}") from exc
    if not isinstance(result_json, bool):
        raise TypeError(f"result_json must be True or False, got {type(result_json).__name__} {result_json!r}")
    if recommender is not None and not isinstance(recommender, Recommender):
        raise TypeError(f"recommender must be a backcare.Recommender or None, got {type(recommender).__name__}")
    fields = (recommender or default_recommender()).fields
    is_dask = _is_dask_frame(frame)
    if not is_dask and not isinstance(frame, pd.DataFrame):
        raise TypeError(f"recommend_frame takes a pandas or Dask DataFrame, got {type(frame).__name__}")
    added = RESULT_COLUMNS if result_json else RESULT_COLUMNS[:-1]
    profile_columns = _profile_columns(list(frame.columns), fields, columns, added)
    _check_dtypes(frame.dtypes, fields, profile_columns, pd, is_dask)
    if not is_dask:
        return _partition(frame, recommender, profile_columns, result_json)
    meta = _with_results(frame._meta, pd, [], result_json)
    return frame.map_partitions(_partition, recommender, profile_columns, result_json, meta=meta)


def _is_dask_frame(frame: Any) -> bool:
    if "dask" not in sys.modules:  # a Dask frame cannot exist without dask imported
        return False
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # dask without its dataframe extra
        raise ImportError(f"Dask frames need dask[dataframe] and distributed: {_INSTALL}") from exc
    return isinstance(frame, dd.DataFrame)


def _profile_columns(
    present: list[Any], fields: Mapping[str, FieldSpec], columns: Sequence[str] | None,
    added: tuple[str, ...],
) -> tuple[str, ...]:
    """Check the frame's columns; return the ones that hold profile fields."""
    for name in present:
        if not isinstance(name, str):
            raise ProfileError(f"frame column names must be strings, got {type(name).__name__} {quote(name)}")
    if len(set(present)) != len(present):
        dupes = sorted({c for c in present if present.count(c) > 1})
        raise ProfileError(f"frame has duplicate columns: {', '.join(dupes)}", field=dupes[0])
    if columns is None:
        chosen = present
        hint = "; pass columns=[...] to name the profile columns and carry the others through"
    else:
        if isinstance(columns, str):
            columns = [columns]
        chosen = list(columns)
        hint = ""
        for name in chosen:
            if name not in present:
                raise ProfileError(
                    f"column {quote(name)} given in columns= is not in the frame{did_you_mean(str(name), present)}",
                    field=str(name),
                )
    for name in chosen:
        if name not in fields:
            raise ProfileError(
                f"column {quote(name)} is not a profile field{did_you_mean(name, fields)}{hint}; "
                f"known fields: {', '.join(sorted(fields))}",
                field=name,
            )
    clash = [c for c in added if c in present]
    if clash:
        raise ProfileError(
            f"the frame already has a column {clash[0]!r}, which recommend_frame adds; rename it", field=clash[0]
        )
    return tuple(chosen)


def _check_dtypes(
    dtypes: Any, fields: Mapping[str, FieldSpec], columns: tuple[str, ...], pd: Any, is_dask: bool
) -> None:
    """Refuse, before any work, a text column holding a field that is not text.

    Dask converts object columns to strings by default, turning ``True`` into
    ``"True"`` and ``["fever"]`` into ``"['fever']"``; reading those back
    would be guessing, so the frame is refused with the way out.
    """
    for name in columns:
        spec = fields[name]
        if spec.type != "string" and isinstance(dtypes[name], pd.StringDtype):
            hint = (
                "; Dask converted an object column to strings: build the Dask frame inside "
                "dask.config.set({'dataframe.convert-string': False})"
                if is_dask
                else ""
            )
            raise ProfileError(
                f"column {name!r} holds text ({dtypes[name]}), but field {name!r} takes "
                f"{spec.expected()}{hint}",
                field=name,
            )


def _cell(value: Any, spec: FieldSpec) -> Any:
    """One frame cell as the plain value a profile takes; None for "not given"."""
    if value is None or isinstance(value, (str, bool, list, tuple, int)):
        return value
    if type(value) is float:  # the commonest cells, without asking pandas
        if value != value:  # NaN: missing in a float column
            return None
        if spec.type == "int" and value.is_integer() and abs(value) <= 2**53:
            return int(value)  # pandas stores an int column with missing values as floats
        return value
    if getattr(value, "ndim", 0) and hasattr(value, "tolist"):  # a numpy array in a list column
        return value.tolist()
    import pandas as pd

    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # not a scalar pandas can judge: let validation say what is wrong
        return value
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if spec.type == "int" and isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)  # pandas stores an int column with missing values as floats
    return value


def _profiles(frame: Any, recommender: Recommender, columns: tuple[str, ...]) -> list[Profile]:
    fields = recommender.fields
    specs = [fields[c] for c in columns]
    out = []
    rows: Iterable[tuple[Any, ...]] = (
        frame[list(columns)].itertuples(index=False, name=None)
        if columns
        else [()] * len(frame)  # pandas before 3.0 yields no rows at all for a frame without columns
    )
    for label, row in zip(frame.index, rows):
        data = {c: v for c, s, cell in zip(columns, specs, row) if (v := _cell(cell, s)) is not None}
        try:
            out.append(recommender.profile(data))
        except ProfileError as exc:
            raise ProfileError(f"row {quote(label)}: {exc}", field=exc.field) from exc
    return out


def _partition(
    frame: Any, recommender: Recommender | None, columns: tuple[str, ...], result_json: bool
) -> Any:
    """The work on one partition (or the whole pandas frame): validate every row, then recommend."""
    import pandas as pd

    rec = recommender if recommender is not None else default_recommender()
    profiles = _profiles(frame, rec, columns)
    return _with_results(frame, pd, rec._recommend_profiles(profiles), result_json)


def _with_results(frame: Any, pd: Any, results: list[Any], result_json: bool) -> Any:
    def column(values: list[Any]) -> Any:
        return pd.Series(values, index=frame.index, dtype=object)

    added = {
        "top_technique": column([r.techniques[0].id if r.techniques else None for r in results]),
        "top_evidence": column([r.techniques[0].evidence if r.techniques else None for r in results]),
        "top_score_by_evidence": column([dict(r.techniques[0].score_by_evidence) if r.techniques else None
                                         for r in results]),
        "technique_ids": column([r.technique_ids() for r in results]),
        "referral_urgency": column([r.referral.urgency if r.referral else None for r in results]),
    }
    if result_json:
        added["result_json"] = column([r.to_json() for r in results])
    return frame.assign(**added)
