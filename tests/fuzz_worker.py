"""A separate process that loads rule packs and recommends, for tests/test_fuzz.py.

durable-rules is C code: a pack past its limits can segfault or hang the
process that loads it. Running the fuzz cases here lets the test process
survive and report the case. Requests and replies are length-prefixed pickles
on stdin/stdout (pickle so that profiles of any Python type can be sent).
Only files under the directory given as the first argument are written.

Each reply classifies what happened: ``ok``, ``rule_error``, ``profile_error``,
or ``bad`` with a description when backcare raised anything else, let a bare
engine error through, or returned something malformed.
"""

from __future__ import annotations

import json
import pickle
import struct
import sys
import traceback
from pathlib import Path
from typing import Any


def _reply(out: Any, value: object) -> None:
    data = pickle.dumps(value)
    out.write(struct.pack(">I", len(data)) + data)
    out.flush()


def _recommend(rec: Any, profile: object) -> tuple[str, str]:
    import backcare

    try:
        result = rec.recommend(profile)
    except backcare.ProfileError as exc:
        return "profile_error", str(exc)
    except Exception:
        return "bad", traceback.format_exc()
    if not isinstance(result, backcare.Recommendation):
        return "bad", f"recommend returned {type(result).__name__}"
    text = result.to_json()
    if json.loads(text) != result.to_dict():
        return "bad", "to_json() does not round-trip"
    return "ok", text


def handle(request: dict[str, Any], workdir: Path, counter: int) -> dict[str, Any]:
    import backcare

    rec: Any = None
    if request.get("pack") is not None:
        path = workdir / f"pack-{counter}.toml"
        path.write_text(request["pack"], encoding="utf-8", errors="surrogatepass")
        try:
            rec = backcare.Recommender([str(path)], cache_size=0,
                                       include_default=request.get("include_default", True))
        except backcare.RuleError as exc:
            message = str(exc)
            if isinstance(exc.__cause__, backcare.EngineError) or "error code" in message:
                return {"load": "bad", "detail": "the engine's own error reached the caller: " + message}
            return {"load": "rule_error", "detail": message}
        except Exception:
            return {"load": "bad", "detail": traceback.format_exc()}
        finally:
            path.unlink()
    else:
        rec = backcare.Recommender(cache_size=0)
    results = [_recommend(rec, p) for p in request.get("profiles", ())]
    return {"load": "ok", "results": results}


def main() -> None:
    workdir = Path(sys.argv[1])
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    counter = 0
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        request = pickle.loads(stdin.read(struct.unpack(">I", head)[0]))
        counter += 1
        _reply(stdout, handle(request, workdir, counter))


if __name__ == "__main__":
    main()
