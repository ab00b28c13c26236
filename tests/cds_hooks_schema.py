"""JSON Schemas of CDS Hooks messages, written from the specification's required fields.

From the CDS Hooks specification (https://cds-hooks.hl7.org, "Discovery",
"Calling a CDS Service", "CDS Service Response"): what each message must
hold, the allowed values of ``indicator``, ``link.type``, ``action.type`` and
``selectionBehavior``, the summary's limit of fewer than 140 characters, and
the rule that an optional element is omitted rather than sent null or empty.
The tests validate every request they send and every response they get.
"""

from __future__ import annotations

from typing import Any

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_TEXT = {"type": "string", "minLength": 1}
_URL = {"type": "string", "pattern": r"^https?://\S+$"}

CODING: dict[str, Any] = {
    "type": "object",
    "properties": {"system": _TEXT, "code": _TEXT, "display": _TEXT},
    "additionalProperties": True,
}

SOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": _TEXT, "url": _URL, "icon": _URL, "topic": CODING},
    "additionalProperties": False,
}

ACTION: dict[str, Any] = {
    "type": "object",
    "required": ["type", "description"],
    "properties": {
        "type": {"enum": ["create", "update", "delete"]},
        "description": _TEXT,
        "resource": {"type": "object", "minProperties": 1},
        "resourceId": _TEXT,
    },
    "additionalProperties": False,
}

SUGGESTION: dict[str, Any] = {
    "type": "object",
    "required": ["label"],
    "properties": {
        "label": _TEXT,
        "uuid": _TEXT,
        "isRecommended": {"type": "boolean"},
        "actions": {"type": "array", "minItems": 1, "items": ACTION},
    },
    "additionalProperties": False,
}

LINK: dict[str, Any] = {
    "type": "object",
    "required": ["label", "url", "type"],
    "properties": {
        "label": _TEXT,
        "url": _URL,
        "type": {"enum": ["absolute", "smart"]},
        "appContext": _TEXT,
    },
    "additionalProperties": False,
    # appContext only with SMART links.
    "if": {"properties": {"type": {"const": "absolute"}}},
    "then": {"not": {"required": ["appContext"]}},
}

CARD: dict[str, Any] = {
    "type": "object",
    "required": ["summary", "indicator", "source"],
    "properties": {
        "uuid": _TEXT,
        "summary": {"type": "string", "minLength": 1, "maxLength": 139},
        "detail": _TEXT,
        "indicator": {"enum": ["info", "warning", "critical"]},
        "source": SOURCE,
        "suggestions": {"type": "array", "minItems": 1, "items": SUGGESTION},
        "selectionBehavior": {"enum": ["at-most-one", "any"]},
        "overrideReasons": {"type": "array", "minItems": 1, "items": {**CODING, "required": ["display"]}},
        "links": {"type": "array", "minItems": 1, "items": LINK},
    },
    "additionalProperties": False,
    # "If suggestions are present, selectionBehavior MUST also be provided."
    "dependentRequired": {"suggestions": ["selectionBehavior"]},
}

DISCOVERY: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "CDS Hooks discovery response",
    "type": "object",
    "required": ["services"],
    "properties": {
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["hook", "description", "id"],
                "properties": {
                    "hook": _TEXT,
                    "title": _TEXT,
                    "description": _TEXT,
                    "id": _TEXT,
                    "prefetch": {"type": "object", "minProperties": 1, "additionalProperties": _TEXT},
                    "usageRequirements": _TEXT,
                },
                "additionalProperties": False,
            },
        }
    },
}

REQUEST: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "CDS Hooks service request",
    "type": "object",
    "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": _TEXT,
        "hookInstance": _TEXT,
        "fhirServer": _URL,
        "fhirAuthorization": {
            "type": "object",
            "required": ["access_token", "token_type", "expires_in", "scope", "subject"],
            "properties": {"token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}},
        },
        "context": {"type": "object", "minProperties": 1},
        "prefetch": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
    },
    "additionalProperties": False,
    "dependentRequired": {"fhirAuthorization": ["fhirServer"]},
}

PATIENT_VIEW_CONTEXT: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "patientId"],
    "properties": {"userId": _TEXT, "patientId": _TEXT, "encounterId": _TEXT},
}

RESPONSE: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "CDS Hooks service response",
    "type": "object",
    "required": ["cards"],
    "properties": {
        "cards": {"type": "array", "items": CARD},
        "systemActions": {"type": "array", "minItems": 1, "items": ACTION},
    },
    "additionalProperties": False,
}
