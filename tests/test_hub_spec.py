"""The one Hub-id parser (letitcode.hub.spec) and the run-naming helpers.

Four copies with different rules were merged into it (data/benchmarks/_io, results/dataset, models and the
leaderboard app). The table keeps each case where they disagreed, with what each old copy answered, so the
strictest correct rule that replaced them is written down: io = data sources, rd = result datasets,
models = --model, lb = leaderboard --results (1: tried as a Hub id).
"""

from __future__ import annotations

import pytest

from letitcode.errors import UserError
from letitcode.hub import spec

# spec, is it a Hub id now, (io, rd, models, lb) before
HUB_ID_TABLE = [
    ("org/name", True, (1, 1, 1, 1)),
    ("org/name@v1", True, (1, 1, 1, 1)),
    ("org/name@refs/pr/1", True, (1, 1, 1, 1)),  # revisions may hold "/"
    ("my_org/my_model", True, (1, 1, 1, 1)),
    ("org/name@v1+x", True, (1, 1, 1, 0)),  # a legal git ref; lb's [\w./-] refused it
    ("a/b@c@d", True, (1, 1, 1, 0)),  # repo a/b, revision c@d: models split at the last "@" (repo a/b@c)
    ("org/data.jsonl", False, (0, 1, 1, 1)),  # named like a data file: a local file that is missing
    ("org/rows.parquet@main", False, (0, 1, 1, 1)),
    ("org/name@", False, (1, 1, 1, 0)),  # an "@" with no revision is a typo, not "no revision"
    ("org/name@a b", False, (1, 1, 1, 0)),  # no whitespace in a revision
    ("org/.hidden", False, (0, 0, 1, 1)),  # each part starts with a letter or digit
    ("org/_x", False, (0, 0, 1, 1)),
    ("org/-x", False, (0, 0, 1, 1)),
    ("org/a b", False, (0, 0, 1, 0)),
    ("org/näme", False, (0, 0, 1, 1)),  # ASCII only, as the Hub
    ("a/b/c", False, (0, 0, 0, 0)),  # (the manifest naming in rd took it for a repo: see below)
    ("org/name/", False, (0, 0, 0, 0)),
    ("./org/name", False, (0, 0, 0, 0)),
    ("~/org/name", False, (0, 0, 0, 0)),
    ("/org/name", False, (0, 0, 0, 0)),
    ("org\\name", False, (0, 0, 0, 0)),
    ("name", False, (0, 0, 0, 0)),
]


@pytest.mark.parametrize(("text", "expected", "before"), HUB_ID_TABLE, ids=[t[0] for t in HUB_ID_TABLE])
def test_hub_id_rule(text: str, expected: bool, before: tuple[int, ...]) -> None:
    assert spec.looks_like_hub_id(text) is expected
    assert len(before) == 4


def test_split_revision() -> None:
    assert spec.split_revision("a/b@main") == ("a/b", "main")
    assert spec.split_revision("a/b", "v1") == ("a/b", "v1")
    assert spec.split_revision("a/b@refs/pr/1") == ("a/b", "refs/pr/1")
    assert spec.split_revision("a/b@c@d") == ("a/b", "c@d")
    assert spec.split_revision("a/b@v1", "v1") == ("a/b", "v1")
    # --model used to let the @revision win silently over an explicit one; now both callers refuse
    with pytest.raises(UserError, match="model 'a/b@v1' names revision 'v1' but revision='v2'"):
        spec.split_revision("a/b@v1", "v2", what="model")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("./runs/x", "spelled as a path"),
        ("C:\\runs", "spelled as a path"),
        ("runs/demo/dataset", "one '/'"),
        ("org/name/", "one '/'"),
        ("tests/not-there", "tests/ is a folder here"),
        ("someorg/results", None),
    ],
)
def test_local_reason(text: str, reason: str | None, monkeypatch, repo) -> None:
    monkeypatch.chdir(repo)  # `tests/` is a folder here
    got = spec.local_reason(text)
    assert got is None if reason is None else reason in got


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"spec": "org/name@rev", "hub_id": None}, ("org/name", "org/name")),
        (
            {"spec": "embedded", "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
            ("embedded", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ),
        ({"spec": "/tmp/some/adapter", "hub_id": None}, ("adapter", None)),
        ({"spec": "ckpt/org/name", "hub_id": None}, ("name", None)),  # was taken for the repo ckpt/org/name
        ({"spec": "runs/x.json", "hub_id": None}, ("x.json", None)),  # was taken for the repo runs/x.json
        ({"spec": "runs/ckpt", "hub_id": "org/base"}, ("org/base", "org/base")),
    ],
)
def test_model_identity(model: dict, expected: tuple) -> None:
    assert spec.model_identity({"model": model}) == expected
