"""backcare: back-pain symptom profiles in, ranked and explained massage techniques out.

The reasoning is declarative rules (TOML files under ``rules/``) evaluated by
the durable-rules engine; every result carries its rationale, the evidence
level of each step, and any referral or exclusion that safety rules demand.

This is information, not medical advice.

>>> import backcare
>>> result = backcare.recommend({"stiffness": True})
>>> [t.id for t in result.techniques][:2]
['swedish_massage', 'stretching']
>>> result.disclaimer.startswith("This is information, not medical advice")
True
"""

from __future__ import annotations

from ._errors import BackcareError, EngineError, Problem, ProfileError, RuleError, UnknownIdError
from ._explore import Miss, WhatIf, WhyNot
from ._frame import recommend_frame
from ._model import Contraindication, PackInfo, RedFlag
from ._profile import FieldSpec, Profile
from ._recommender import CacheInfo, Recommender, conditions, recommend, red_flags
from ._result import (
    DISCLAIMER,
    Contribution,
    DerivedFact,
    Exclusion,
    NotRecommended,
    Premise,
    Provenance,
    RankedTechnique,
    Recommendation,
    Referral,
    Step,
)

#: backcare's version (PEP 440): a ``.devN`` suffix is a development version of the next release.
__version__ = "0.2.0.dev0"

__all__ = [
    "DISCLAIMER",
    "BackcareError",
    "CacheInfo",
    "Contraindication",
    "Contribution",
    "DerivedFact",
    "EngineError",
    "Exclusion",
    "FieldSpec",
    "Miss",
    "NotRecommended",
    "PackInfo",
    "Premise",
    "Problem",
    "Profile",
    "ProfileError",
    "Provenance",
    "RankedTechnique",
    "Recommendation",
    "Recommender",
    "RedFlag",
    "Referral",
    "RuleError",
    "Step",
    "UnknownIdError",
    "WhatIf",
    "WhyNot",
    "__version__",
    "conditions",
    "recommend",
    "recommend_frame",
    "red_flags",
]
