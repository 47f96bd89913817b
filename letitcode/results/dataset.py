"""A run's records and summary as a result-dataset folder: writing, merging and reading it, locally only.

Layout of a dataset folder (`D/dataset/` of every run, or a leaderboard folder many runs are merged into):

    README.md                          dataset card; YAML `configs:` maps each config to its Parquet files
    data/<config>/samples.parquet      one row per record; nested values JSON-encoded as strings
    data/<config>/summary.parquet      one row (SUMMARY_COLUMNS)
    data/<config>/manifest.json        the run manifest (also in the card metadata under `letitcode_manifests`)

`<config>` is `{model_slug}--{benchmark}--{approach}`, so one leaderboard repo holds many runs; the card's
`summary` config globs every `data/*/summary.parquet`, so `load_dataset(repo, "summary")` is the table.
Reading summaries from several sources, Hub ids among them, is `letitcode.results.load`; pushing is
`letitcode.hub.publish`.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from letitcode import templates
from letitcode.errors import UserError
from letitcode.hub.spec import approach_of, config_name, model_identity
from letitcode.records import read_jsonl

CARD_TEMPLATE = templates.CARDS / "result_dataset.md"
SUMMARY_CONFIG = "summary"
SAMPLES_SPLIT = "samples"

# name -> Arrow type of the summary row; nullable everywhere (None is a missing metric, never 0)
SUMMARY_SCHEMA: dict[str, str] = {
    "config": "string",
    "model": "string",
    "model_repo": "string",
    "approach": "string",
    "benchmark": "string",
    "split": "string",
    "n_problems": "int64",
    "n_samples": "int64",
    "pass@1": "float64",
    "pass@1_ci_low": "float64",
    "pass@1_ci_high": "float64",
    "ci_method": "string",
    "pass@k": "string",
    **{
        f"{level}{suffix}": kind
        for level in ("Easy", "Medium", "Hard")
        for suffix, kind in (
            ("", "float64"),
            ("_ci_low", "float64"),
            ("_ci_high", "float64"),
            ("_n", "int64"),
        )
    },
    "model_type": "string",
    "parameters": "int64",
    "precision": "string",
    "bleu": "float64",
    "codebleu": "float64",
    "test_pass_rate": "float64",
    "status_counts": "string",
    "error_taxonomy": "string",
    "latency_p50_s": "float64",
    "latency_p95_s": "float64",
    "tokens_per_solved": "float64",
    "manifest": "string",
    "created": "string",
}
SUMMARY_COLUMNS = tuple(SUMMARY_SCHEMA)


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _difficulty_columns(by_diff: Mapping[str, Any], ci_diff: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level in ("Easy", "Medium", "Hard"):
        block, ci = by_diff.get(level) or {}, ci_diff.get(level) or {}
        low, high = ci.get("pass@1") or (None, None)
        n = ci.get("n", block.get("n_problems"))
        out.update(
            {
                level: _num(block.get("pass@1")),
                f"{level}_ci_low": _num(low),
                f"{level}_ci_high": _num(high),
                f"{level}_n": None if n is None else int(n),
            }
        )
    return out


def _model_metadata(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """`model_type` (adapter / instruct / base: how it was prompted), `parameters` and `precision`."""
    model = manifest.get("model") if isinstance(manifest.get("model"), Mapping) else {}
    backend = manifest.get("backend") if isinstance(manifest.get("backend"), Mapping) else {}
    style = (manifest.get("prompt") or {}).get("style")
    if model.get("is_adapter"):
        kind = "adapter"
    else:
        kind = {"chat": "instruct", "completion": "base"}.get(str(style))
    params = backend.get("n_params")
    return {
        "model_type": kind,
        "parameters": None if params is None else int(params),
        "precision": backend.get("dtype"),
    }


def summary_row(results: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The one-row summary of a run (SUMMARY_COLUMNS), from its results.json and manifest.json."""
    model, repo = model_identity(manifest)
    bench = manifest.get("benchmark") or {}
    benchmark = str(bench.get("name") or results.get("benchmark") or "unknown")
    approach = approach_of(manifest)
    cis = results.get("ci") or {}
    ci = cis.get("pass@1") or [None, None]
    by_diff = results.get("by_difficulty") or {}
    ci_diff = cis.get("by_difficulty") or {}
    tax = results.get("error_taxonomy") or {}
    row = {
        "config": config_name(model, benchmark, approach),
        "model": model,
        "model_repo": repo,
        "approach": approach,
        "benchmark": benchmark,
        "split": bench.get("split"),
        "n_problems": results.get("n_problems"),
        "n_samples": results.get("n_samples"),
        "pass@1": _num(results.get("pass@1")),
        "pass@1_ci_low": _num(ci[0]),
        "pass@1_ci_high": _num(ci[1]),
        "ci_method": cis.get("method"),
        "pass@k": json.dumps({k: v for k, v in results.items() if k.startswith("pass@")}),
        **_difficulty_columns(by_diff, ci_diff),
        **_model_metadata(manifest),
        "bleu": _num(results.get("bleu")),
        "codebleu": _num(results.get("codebleu")),
        "test_pass_rate": _num(results.get("test_pass_rate")),
        "status_counts": json.dumps(results.get("status_counts") or {}),
        # examples stay in results.json and the card; the summary row carries the counts
        "error_taxonomy": json.dumps({k: v for k, v in tax.items() if k != "examples"}),
        "latency_p50_s": _num(results.get("latency_p50_s")),
        "latency_p95_s": _num(results.get("latency_p95_s")),
        "tokens_per_solved": _num(results.get("tokens_per_solved")),
        "manifest": json.dumps(manifest, default=str),
        "created": str(manifest.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    }
    return row


def _summary_features() -> Any:
    from datasets import Features, Value

    return Features({k: Value(t) for k, t in SUMMARY_SCHEMA.items()})


def _utf8(value: Any) -> Any:
    """Arrow strings are UTF-8: a model's lone surrogate (valid in JSON, in samples.jsonl) becomes U+FFFD."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    elif isinstance(value, list):
        return [_utf8(v) for v in value]
    elif isinstance(value, dict):
        return {k: _utf8(v) for k, v in value.items()}
    return value


def _encode_records(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for Parquet: dicts/lists become JSON strings, and a column whose values mix types
    (str and number, say) is JSON-encoded as a whole so Arrow gets one type per column."""
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    rows = [{k: _utf8(r.get(k)) for k in columns} for r in records]
    for col in columns:
        kinds = set()
        for row in rows:
            v = row[col]
            if v is None:
                continue
            kinds.add("num" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__)
        if kinds & {"dict", "list", "tuple"} or len(kinds) > 1:
            for row in rows:
                if row[col] is not None:
                    row[col] = json.dumps(row[col], default=str)
        elif kinds == {"num"} and any(isinstance(row[col], float) for row in rows):
            for row in rows:  # ints and floats in one column: floats throughout
                if row[col] is not None:
                    row[col] = float(row[col])
    return rows


def _write_config(
    folder: Path,
    config: str,
    records: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    manifest: Mapping[str, Any],
) -> Path:
    import datasets
    from datasets import Dataset

    rows = _encode_records(records)
    if not rows:
        raise UserError(f"run {config!r} has no records to write")
    target = folder / "data" / config
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    quiet = datasets.is_progress_bar_enabled()
    if quiet:  # a one-batch write needs no progress bar on every run
        datasets.disable_progress_bars()
    try:
        Dataset.from_list(rows).to_parquet(str(target / "samples.parquet"))
        Dataset.from_list([dict(summary)], features=_summary_features()).to_parquet(
            str(target / "summary.parquet")
        )
    finally:
        if quiet:
            datasets.enable_progress_bars()
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return target


def read_config_summaries(folder: Path) -> list[dict[str, Any]]:
    """Summary rows of every config under `folder/data/`, sorted by config name."""
    import pyarrow.parquet as pq

    rows = []
    for path in sorted((folder / "data").glob("*/summary.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def write_card(folder: str | Path, *, title: str | None = None) -> Path:
    """(Re)render `folder/README.md` for every config under `folder/data/`: YAML `configs:` (one per run,
    plus the `summary` config over all summary files), manifests as metadata, and the summary table."""
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    summaries = read_config_summaries(folder)
    if not summaries:
        raise UserError(f"{folder}: no data/<config>/summary.parquet to describe")
    configs: list[dict[str, Any]] = [
        {
            "config_name": SUMMARY_CONFIG,
            "data_files": [{"split": "train", "path": "data/*/summary.parquet"}],
            "default": True,
        }
    ]
    manifests = {}
    for s in summaries:
        cfg = s["config"]
        configs.append(
            {
                "config_name": cfg,
                "data_files": [{"split": SAMPLES_SPLIT, "path": f"data/{cfg}/samples.parquet"}],
            }
        )
        mpath = folder / "data" / cfg / "manifest.json"
        manifests[cfg] = (
            json.loads(mpath.read_text()) if mpath.exists() else json.loads(s["manifest"] or "{}")
        )
    n_samples = sum(int(s["n_samples"] or 0) for s in summaries)
    size = "n<1K" if n_samples < 1000 else "1K<n<10K" if n_samples < 10_000 else "10K<n<100K"
    data = DatasetCardData(
        pretty_name=title or "LetItCode evaluation results",
        language=["en", "code"],
        size_categories=size,
        task_categories=["text-generation"],
        tags=["letitcode", "code-generation", "evaluation", "leetcode"],
        configs=configs,
        letitcode_manifests=manifests,
    )
    rows = []
    for s in summaries:
        tax = json.loads(s["error_taxonomy"] or "{}").get("counts", {})
        rows.append({**s, "top_errors": ", ".join(f"{k} {v}" for k, v in list(tax.items())[:3]) or "-"})
    card = DatasetCard.from_template(
        data,
        template_path=str(CARD_TEMPLATE),
        title=title or "LetItCode evaluation results",
        summaries=rows,
        summary_config=SUMMARY_CONFIG,
        samples_split=SAMPLES_SPLIT,
    )
    card.save(folder / "README.md")
    return folder / "README.md"


def write_run_dataset(
    folder: str | Path,
    records: Sequence[Mapping[str, Any]],
    results: Mapping[str, Any],
    manifest: Mapping[str, Any],
) -> str:
    """Write one run as a dataset folder (replacing what was there). Returns the config name."""
    folder = Path(folder)
    summary = summary_row(results, manifest)
    if (folder / "data").exists():
        shutil.rmtree(folder / "data")  # a run's own folder holds exactly that run
    _write_config(folder, summary["config"], records, summary, manifest)
    write_card(folder)
    return summary["config"]


def read_run_dir(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(records, results, manifest) of a run directory; a UserError naming the file that is missing."""

    for name in ("samples.jsonl", "results.json", "manifest.json"):
        if not (run_dir / name).exists():
            raise UserError(f"{run_dir} is not a run directory: {name} is missing")
    records = [r for _, r in read_jsonl(run_dir / "samples.jsonl", what="samples file")]
    results = json.loads((run_dir / "results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return records, results, manifest


def ensure_run_dataset(run_dir: str | Path) -> Path:
    """`run_dir/dataset`, written from the run's files if an older run lacks it."""
    run_dir = Path(run_dir)
    folder = run_dir / "dataset"
    if not list((folder / "data").glob("*/summary.parquet")):
        records, results, manifest = read_run_dir(run_dir)
        write_run_dataset(folder, records, results, manifest)
    return folder


def merge_into(dataset_dir: str | Path, run_dir: str | Path, *, title: str | None = None) -> list[str]:
    """Add a run (a run directory, or another dataset folder) to a leaderboard dataset folder; a config
    of the same name is replaced. Re-renders the card over all configs. Returns the configs merged."""
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    source = (
        run_dir
        if (run_dir / "data").is_dir() and not (run_dir / "results.json").exists()
        else ensure_run_dataset(run_dir)
    )
    merged = []
    for cfg_dir in sorted((source / "data").glob("*/")):
        if not (cfg_dir / "summary.parquet").exists():
            continue
        target = dataset_dir / "data" / cfg_dir.name
        if target.resolve() == cfg_dir.resolve():
            continue
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(cfg_dir, target)
        merged.append(cfg_dir.name)
    if not merged:
        raise UserError(f"{run_dir}: no run data to merge")
    write_card(dataset_dir, title=title)
    return merged


def stage_for_push(
    run_or_dataset_dirs: Sequence[str | Path], existing: str | Path | None = None, *, title: str | None = None
) -> Path:
    """A temporary dataset folder holding the given runs, with a card that also lists the configs already
    in the target repo (`existing`: a snapshot of its data/*/summary.parquet and manifests), so pushing a
    new run to a shared leaderboard repo never drops the others from the card."""
    stage = Path(tempfile.mkdtemp(prefix="letitcode-results-"))
    if existing is not None and (Path(existing) / "data").is_dir():
        shutil.copytree(Path(existing) / "data", stage / "data")
    for d in run_or_dataset_dirs:
        merge_into(stage, d, title=title)
    return stage
