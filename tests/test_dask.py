"""recommend_frame: pandas frames here, Dask frames on a two-process dask.distributed cluster."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

pd = pytest.importorskip("pandas", reason="needs the dask extra: pip install backcare[dask]")
dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import backcare  # noqa: E402
from backcare import ProfileError, Recommender, recommend_frame  # noqa: E402

from .test_batch import PACK, cohort  # noqa: E402

RESULT_COLUMNS = ["top_technique", "top_evidence", "top_score_by_evidence", "technique_ids", "referral_urgency",
                  "result_json"]


def sequential(profiles, rec=None):
    rec = rec or backcare._recommender.default_recommender()
    return [rec.recommend(p).to_json() for p in profiles]


def frame_of(profiles):
    # Dask's default turns object columns (bools with gaps, lists) into strings; see the error test.
    with dask.config.set({"dataframe.convert-string": False}):
        return pd.DataFrame.from_records(profiles)


def check_columns(out):
    for top, evidence, by_level, ids, urgency, text in zip(*(out[c] for c in RESULT_COLUMNS)):
        data = json.loads(text)
        assert ids == [t["id"] for t in data["techniques"]]
        assert top == (ids[0] if ids else None)
        first = data["techniques"][0] if ids else None
        assert evidence == (first["evidence"] if first else None)
        assert by_level == (first["score_by_evidence"] if first else None)
        assert urgency == (data["referral"]["urgency"] if data["referral"] else None)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=40
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


# --- Dask on a local cluster ---------------------------------------------------------------


@pytest.mark.slow
def test_dask_frame_on_two_worker_processes_equals_sequential(client):
    profiles = cohort.cohort(300, seed=5, returning=0.3)
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame_of(profiles), npartitions=6)
        lazy = recommend_frame(ddf)
    assert isinstance(lazy, dd.DataFrame)  # nothing computed yet
    assert list(lazy.columns) == [*ddf.columns, *RESULT_COLUMNS]
    out = lazy.compute()
    assert out["result_json"].tolist() == sequential(profiles)
    assert list(out.index) == list(range(len(profiles)))
    check_columns(out)
    assert len({w for w in client.run(lambda: 1)}) == 2


@pytest.mark.slow
def test_dask_workers_build_a_packed_recommender_once(client, tmp_path):
    pack_dir = tmp_path / "clinic"
    pack_dir.mkdir()
    (pack_dir / "pack.toml").write_text(PACK)
    rec = Recommender(rules=[pack_dir], cache_size=64)
    profiles = cohort.cohort(120, seed=8, returning=0.1)
    expected = sequential(profiles, rec)
    shutil.rmtree(pack_dir)  # the workers get the pack's text, not its path
    with dask.config.set({"dataframe.convert-string": False}):
        out = recommend_frame(dd.from_pandas(frame_of(profiles), npartitions=8), rec).compute()
    assert out["result_json"].tolist() == expected
    assert any("hot_stones" in ids for ids in out["technique_ids"])

    def built() -> int:
        from backcare import _recommender

        return sum(1 for key in _recommender._rebuilt if key[0] and key[0][0].name == str(pack_dir))

    assert set(client.run(built).values()) <= {0, 1}  # 8 partitions, at most one build per worker
    assert sum(client.run(built).values()) >= 1


@pytest.mark.slow
def test_dask_row_errors_name_the_row_and_field(client):
    with dask.config.set({"dataframe.convert-string": False}):
        frame = pd.DataFrame({"age": [40, None, 41, 42.5]}, index=[10, 11, 12, 13])
        lazy = recommend_frame(dd.from_pandas(frame, npartitions=2))
    with pytest.raises(ProfileError, match=r"row 13: field 'age': expected an integer from 0 to 130, got float 42.5"):
        lazy.compute()


def test_dask_string_conversion_is_refused_before_any_work():
    frame = pd.DataFrame({"stiffness": [True, None], "red_flags": [["fever"], None]})
    ddf = dd.from_pandas(frame, npartitions=1)  # default config: object columns become strings
    with pytest.raises(ProfileError, match=r"column 'stiffness' holds text .*dataframe.convert-string"):
        recommend_frame(ddf)


# --- pandas ---------------------------------------------------------------------------------


def test_pandas_frame_equals_sequential_and_keeps_index():
    profiles = cohort.cohort(150, seed=9, returning=0.3)
    frame = frame_of(profiles)
    frame.index = [f"p{i}" for i in range(len(frame))]
    out = recommend_frame(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(frame.index)
    assert out["result_json"].tolist() == sequential(profiles)
    pd.testing.assert_frame_equal(out[list(frame.columns)], frame)
    check_columns(out)
    for column in RESULT_COLUMNS:
        assert out[column].dtype == object


def test_missing_values_mean_not_given():
    frame = pd.DataFrame(
        {
            "pain_weeks": pd.array([20, None, None, 3], dtype="Int64"),
            "age": [60, math.nan, 30, None],  # float64: pandas upcast the ints
            "stiffness": [True, None, pd.NA, False],
            "goal": ["relaxation", None, math.nan, None],
            "red_flags": [None, ["fever"], math.nan, []],
        }
    )
    out = recommend_frame(frame)
    expected = [
        {"pain_weeks": 20, "age": 60, "stiffness": True, "goal": "relaxation"},
        {"red_flags": ["fever"]},
        {"age": 30},
        {"pain_weeks": 3, "stiffness": False, "red_flags": []},
    ]
    assert out["result_json"].tolist() == sequential(expected)
    assert json.loads(out["result_json"][0])["profile"]["age"] == 60  # an int again, not 60.0
    assert out["referral_urgency"][1] == "urgent"


def test_the_newer_profile_fields_work_as_columns():
    frame = pd.DataFrame({
        "sciatica": [True, None],
        "start_back_score": pd.array([5, None], dtype="Int64"),
        "start_back_psychosocial": pd.array([4, None], dtype="Int64"),
        "conditions": [["recent_surgery"], None],
        "away_from_back": [["recent_surgery"], None],
        "stiffness": [True, True],
    })
    out = recommend_frame(frame)
    expected = [{"sciatica": True, "start_back_score": 5, "start_back_psychosocial": 4,
                 "conditions": ["recent_surgery"], "away_from_back": ["recent_surgery"], "stiffness": True},
                {"stiffness": True}]
    assert out["result_json"].tolist() == sequential(expected)
    assert json.loads(out["result_json"][0])["derived"][0]["name"] in ("needs_elongation", "poor_elasticity",
                                                                       "start_back_risk")
    bad = frame.assign(start_back_psychosocial=pd.array([None, None], dtype="Int64"))
    with pytest.raises(ProfileError, match="row 0: field 'start_back_psychosocial': expected it with"):
        recommend_frame(bad)


def test_non_integral_float_in_an_int_field_is_an_error_naming_row_and_field():
    frame = pd.DataFrame({"pain_weeks": [4.0, None, 6.5]}, index=["a", "b", "c"])
    with pytest.raises(ProfileError, match=r"row 'c': field 'pain_weeks': expected an integer .* got float 6.5") as info:
        recommend_frame(frame)
    assert info.value.field == "pain_weeks"
    with pytest.raises(ProfileError, match=r"row 0: field 'age': .* got float 1e\+30"):
        recommend_frame(pd.DataFrame({"age": [1e30]}))
    with pytest.raises(ProfileError, match=r"row 0: field 'stiffness': expected true or false, got float 1.0"):
        recommend_frame(pd.DataFrame({"stiffness": [1.0]}))


def test_unknown_columns_are_errors_unless_columns_names_the_profile():
    frame = pd.DataFrame({"patient": ["ann", "bob"], "stifness": [True, None]})
    with pytest.raises(ProfileError, match=r"column 'patient' is not a profile field.*columns=\[\.\.\.\]"):
        recommend_frame(frame)
    with pytest.raises(ProfileError, match=r"'stifness' is not a profile field \(did you mean 'stiffness'\?\)"):
        recommend_frame(frame, columns=["stifness"])
    with pytest.raises(ProfileError, match=r"column 'stiffnes' given in columns= is not in the frame"):
        recommend_frame(frame, columns=["stiffnes"])
    good = frame.rename(columns={"stifness": "stiffness"})
    out = recommend_frame(good, columns=["stiffness"])
    assert out["patient"].tolist() == ["ann", "bob"]
    assert out["top_technique"][0] == backcare.recommend({"stiffness": True}).techniques[0].id
    assert out["technique_ids"][1] == []


def test_frames_that_cannot_be_read_are_refused():
    with pytest.raises(TypeError, match="pandas or Dask DataFrame, got list"):
        recommend_frame([{"stiffness": True}])
    with pytest.raises(TypeError, match="recommender must be"):
        recommend_frame(pd.DataFrame(), recommender="default")
    with pytest.raises(ProfileError, match="already has a column 'top_technique'"):
        recommend_frame(pd.DataFrame({"stiffness": [True], "top_technique": ["x"]}), columns=["stiffness"])
    with pytest.raises(ProfileError, match=r"column 'stiffness' holds text \(string\), but field 'stiffness' takes true or false$"):
        recommend_frame(pd.DataFrame({"goal": ["relaxation"], "stiffness": pd.array(["True"], dtype="string")}))
    with pytest.raises(ProfileError, match="duplicate columns: stiffness"):
        recommend_frame(pd.DataFrame([[True, False]], columns=["stiffness", "stiffness"]))
    with pytest.raises(ProfileError, match="column names must be strings"):
        recommend_frame(pd.DataFrame({0: [True]}))


def test_empty_frames():
    out = recommend_frame(pd.DataFrame({"stiffness": pd.Series([], dtype=object)}))
    assert list(out.columns) == ["stiffness", *RESULT_COLUMNS] and len(out) == 0
    out = recommend_frame(pd.DataFrame(index=range(2)))  # no profile columns: two empty profiles
    assert out["result_json"].tolist() == sequential([{}, {}])


def test_import_backcare_does_not_import_pandas_or_dask():
    code = "import sys, backcare; print(sorted(m for m in ('pandas', 'dask', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"pip install backcare\[dask\]"):
        recommend_frame(object())


# --- result_json=False ------------------------------------------------------------------------


def test_without_result_json_the_other_columns_are_the_same():
    profiles = cohort.cohort(150, seed=11, returning=0.3)
    frame = frame_of(profiles)
    full = recommend_frame(frame, Recommender())
    lean = recommend_frame(frame, Recommender(), result_json=False)
    assert list(lean.columns) == [*frame.columns, *RESULT_COLUMNS[:-1]]
    pd.testing.assert_frame_equal(lean, full.drop(columns=["result_json"]))


def test_without_result_json_a_column_of_that_name_is_carried_through():
    frame = pd.DataFrame({"pain_weeks": [20], "result_json": ["mine"]})
    out = recommend_frame(frame, columns=["pain_weeks"], result_json=False)
    assert out["result_json"].tolist() == ["mine"]
    with pytest.raises(ProfileError, match="already has a column 'result_json'"):
        recommend_frame(frame, columns=["pain_weeks"])


@pytest.mark.parametrize("bad", [None, 0, 1, "no"])
def test_result_json_must_be_a_bool(bad):
    frame = pd.DataFrame({"pain_weeks": [20]})
    with pytest.raises(TypeError, match=r"result_json must be True or False, got \w+"):
        recommend_frame(frame, result_json=bad)


@pytest.mark.slow
def test_dask_frame_without_result_json_equals_sequential(client):
    profiles = cohort.cohort(200, seed=12, returning=0.3)
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(frame_of(profiles), npartitions=4)
        lazy = recommend_frame(ddf, result_json=False)
    assert list(lazy.columns) == [*ddf.columns, *RESULT_COLUMNS[:-1]]
    out = lazy.compute()
    rec = backcare._recommender.default_recommender()
    expected = [rec.recommend(p) for p in profiles]
    assert out["technique_ids"].tolist() == [r.technique_ids() for r in expected]
    assert out["referral_urgency"].tolist() == [r.referral.urgency if r.referral else None for r in expected]
