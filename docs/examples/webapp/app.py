"""A web form for backcare: built from its profile schema, with the referral shown first.

Run it with ``python app.py`` and open http://127.0.0.1:8080/.
"""

import html
import json
from pathlib import Path
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

import backcare

SCHEMA = json.loads(Path("profile.schema.json").read_text(encoding="utf-8"))
RECOMMENDER = backcare.Recommender()


def fields():
    """Each profile field as (name, description, JSON type, schema), from the schema."""
    for name, prop in SCHEMA["properties"].items():
        spec = next(s for s in prop["anyOf"] if s.get("type") != "null")
        yield name, spec.get("description", ""), spec["type"], spec


def to_profile(form):
    """Form answers (lists of text, as parse_qs gives them) as profile values; blanks are not given."""
    profile = {}
    for name, _, kind, _ in fields():
        values = [v for v in form.get(name, []) if v.strip()]
        if not values:
            continue
        if kind == "array":
            profile[name] = values
        elif kind == "boolean":
            profile[name] = values[0] == "yes"
        elif kind == "integer":
            # Not a number: pass the text on, and backcare's error says what the field expects.
            profile[name] = int(values[0]) if values[0].lstrip("-").isdigit() else values[0]
        else:
            profile[name] = values[0]
    return profile


def field_html(name, description, kind, spec, form, error):
    """One form control for one field, with its error beside it."""
    e = html.escape
    given = form.get(name, [])
    invalid = f' aria-invalid="true" aria-describedby="error-{name}"' if error else ""
    if kind == "array":
        boxes = "".join(
            f'<label><input type="checkbox" name="{name}" value="{e(v)}"'
            f'{" checked" if v in given else ""}> {e(v)}</label> ' for v in spec["items"]["enum"])
        control = f"<fieldset{invalid}><legend>{e(description)}</legend>{boxes}</fieldset>"
    else:
        if kind == "boolean":
            choices = ["yes", "no"]
        elif "enum" in spec:
            choices = spec["enum"]
        else:
            choices = None
        if choices:
            options = "".join(f'<option{" selected" if [c] == given else ""}>{e(c)}</option>' for c in choices)
            control = f'<select id="{name}" name="{name}"{invalid}><option value="">not given</option>{options}</select>'
        else:
            value = e(given[0]) if given else ""
            control = f'<input id="{name}" name="{name}" value="{value}"{invalid}>'
        control = f'<label for="{name}">{e(description)}</label> {control}'
    if error:
        control += f' <strong id="error-{name}" class="error">{e(error)}</strong>'
    return f"<p>{control}</p>"


def result_html(result):
    """The result: the referral first, then warnings, the ranking, and always the disclaimer."""
    e = html.escape
    out = []
    if result.referral:
        r = result.referral
        out.append(f'<section id="referral" role="alert"><h2>See a clinician ({e(r.urgency)})</h2>'
                   f"<p>{e(r.action)}</p><p>{e(r.meanwhile)}</p></section>")
    for step in result.warnings:
        out.append(f'<p class="warning">{e(step.conclusion)}: {e(step.text)}</p>')
    if result.techniques:
        items = "".join(f"<li>{e(t.name)} (score {t.score:g}, evidence: {e(t.evidence)})</li>"
                        for t in result.techniques)
        out.append(f'<ol id="techniques">{items}</ol>')
    out.append(f'<p id="disclaimer">{e(result.disclaimer)}</p>')
    return "\n".join(out)


def page(form):
    """The whole page for the answers in ``form``: the form, and the result or the errors."""
    errors, result = {}, None
    if form:
        try:
            result = RECOMMENDER.recommend(to_profile(form))
        except backcare.ProfileError as err:
            field = (err.field or "").split("[")[0]     # red_flags[1] is the red_flags control
            errors[field] = str(err)
    controls = "\n".join(field_html(*f, form, errors.get(f[0])) for f in fields())
    body = result_html(result) if result else ""
    return (f"<!doctype html><html lang=en><title>Back pain: massage options</title>{body}"
            f'<form method="post">{controls}<button>Recommend</button></form></html>')


def application(environ, start_response):
    """The WSGI application: GET shows the empty form, POST the answers and the result."""
    form = {}
    if environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(min(size, 100_000)).decode("utf-8"))
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [page(form).encode("utf-8")]


if __name__ == "__main__":
    with make_server("127.0.0.1", 8080, application) as server:
        print("Serving on http://127.0.0.1:8080/")
        server.serve_forever()
