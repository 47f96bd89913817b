"""LetItCode leaderboard: a Gradio app over one or more LetItCode result datasets.

    python leaderboard/app.py --results runs/study [--results ORG/DATASET ...] --host 127.0.0.1 --port 7860

A source is a run's output folder (it holds `dataset/`), a result-dataset folder (`data/<config>/...`,
several configs) or a Hub dataset id (`ORG/NAME` or `ORG/NAME@REVISION`). With no `--results`, the sources
come from the `LEADERBOARD_RESULTS` environment variable (comma- or space-separated), which is how a Hub
Space configures it: this file runs unchanged as a Space's `app.py`.

The app is presentation only: `letitcode.hub.spec` tells a Hub id from a path, `letitcode.results.load`
downloads and reads the summary rows, and intervals are the runs' own, printed by `format_ci`. A Space runs
it with the `letitcode` package beside it (`letitcode.hub.publish.stage_leaderboard_space`).
"""

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from letitcode.data.problem import DIFFICULTIES
from letitcode.errors import UserError
from letitcode.hub.spec import local_reason, looks_like_hub_id
from letitcode.results.load import download, load_summaries
from letitcode.scoring.stats import SMALL_N, format_ci

ENV_VAR = "LEADERBOARD_RESULTS"
HUB = "https://huggingface.co"
# summaries, manifests (for the viewer) and per-sample pass/fail
HUB_PATTERNS = ["README.md", "data/*/summary.parquet", "data/*/manifest.json", "data/*/samples.parquet"]


@dataclass(frozen=True)
class Source:
    """One `--results` value, located: `root` is a dataset folder, or an older run folder without one."""

    spec: str
    root: Path
    hub_repo: str | None = None
    revision: str | None = None

    def manifest_file(self, config: str) -> Path:
        folder = self.root / "data" / config  # an older run folder keeps its manifest at its root
        return (folder if folder.is_dir() else self.root) / "manifest.json"

    def manifest_url(self, config: str) -> str:
        if self.hub_repo:
            rev = self.revision or "main"
            return f"{HUB}/datasets/{self.hub_repo}/blob/{rev}/data/{config}/manifest.json"
        # Gradio's file route serves it (the file is in launch(allowed_paths=...)); relative, so it also
        # works behind a Space's path prefix.
        return f"gradio_api/file={self.manifest_file(config).resolve()}"


# ---------------------------------------------------------------- reading


def locate(spec: str) -> Source:
    """Where one `--results` value's data is. A local path wins over a Hub id of the same spelling."""
    path = Path(spec).expanduser()
    hub_repo = revision = None
    if path.exists():
        if not path.is_dir():
            raise UserError(
                f"--results {spec!r} is a file; pass a run folder, a result-dataset folder or a Hub id"
            )
    elif (why := local_reason(spec)) is not None:
        raise UserError(f"--results {spec!r} does not exist ({why}, so it is not tried as a Hub id)")
    elif looks_like_hub_id(spec):
        path, hub_repo, revision = download(
            spec,
            allow_patterns=HUB_PATTERNS,
            instead="a local result-dataset folder or run folder with --results",
        )
    else:
        raise UserError(
            f"--results {spec!r} does not exist (expected a local folder or a Hub dataset id ORG/NAME)"
        )
    for root in (path, path / "dataset"):
        if any(root.glob("data/*/summary.parquet")):
            return Source(spec, root, hub_repo, revision)
    if (path / "results.json").is_file():
        return Source(spec, path)  # a run from before result datasets: the library summarises its files
    raise UserError(
        f"--results {spec!r} holds no result dataset: expected data/<config>/summary.parquet "
        "(a result-dataset folder) or dataset/data/<config>/summary.parquet (a run folder)"
    )


def load_leaderboard(sources: Sequence[str]) -> pd.DataFrame:
    """Every summary row of every source (one per run), plus `source`, `key` (unique run name),
    `manifest_url` and `manifest_file` (local sources). The per-difficulty CIs come with the summary rows
    (computed by `letitcode.scoring.stats` when the run was scored, read from results.json for an older run
    folder): an older dataset without them shows "-", never an interval recomputed another way."""
    if not sources:
        raise UserError(
            f"no result datasets given: pass --results DIR_OR_HUB_ID (repeatable) or set {ENV_VAR}"
        )
    frames = []
    for spec in sources:
        src = locate(spec)
        rows = load_summaries([str(src.root)]).reset_index(drop=True)
        if rows.empty:
            raise UserError(f"--results {spec!r}: no summary rows in {src.root}")
        rows["source"] = spec
        rows["manifest_url"] = [src.manifest_url(c) for c in rows["config"]]
        rows["manifest_file"] = [
            "" if src.hub_repo else str(src.manifest_file(c).resolve()) for c in rows["config"]
        ]
        frames.append(rows)
    df = pd.concat(frames, ignore_index=True)
    dup = df["config"].duplicated(keep=False)
    df["key"] = df["config"].where(~dup, df["config"] + " [" + df["source"] + "]")
    return df


# ---------------------------------------------------------------- tables


def _json(value: Any) -> dict[str, Any]:
    """A JSON-string column (pass@k, status_counts, error_taxonomy, manifest) as a dict; {} when absent."""
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _num(value: Any, digits: int = 3) -> float | None:
    """Rounded for display; None (an empty cell, never 0) when the metric is absent."""
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else round(f, digits)


def _float(value: Any) -> float:
    n = _num(value, 6)
    return math.nan if n is None else n


def _int(value: Any) -> int | None:
    n = _num(value, 0)
    return None if n is None else int(n)


def _ci(low: Any, high: Any, n: Any = None) -> str:
    """An interval as every table prints it, `[0.061, 0.792] (n=4, small n)`: `format_ci` without the
    value in front; "-" when absent."""
    lo, hi = _num(low), _num(high)
    if lo is None or hi is None:
        return "-"
    return format_ci(lo, (lo, hi), _int(n)).split(" ", 1)[1]


def _rate(row: pd.Series, col: str) -> str:
    """A per-difficulty pass@1 with its interval in one cell: `0.250 [0.061, 0.792] (n=4, small n)`.
    Three decimals always, so the text sorts as the number does."""
    value = _num(_get(row, col))
    lo, hi = _num(_get(row, f"{col}_ci_low")), _num(_get(row, f"{col}_ci_high"))
    if value is None or lo is None or hi is None:
        return "-" if value is None else f"{value:.3f}"
    return format_ci(value, (lo, hi), _int(_get(row, f"{col}_n")))


def _get(row: pd.Series, col: str) -> Any:
    return row[col] if col in row.index else None


def _model_cell(row: pd.Series) -> str:
    repo = _get(row, "model_repo")
    name = str(_get(row, "model") or repo or "?")
    if isinstance(repo, str) and repo:
        return f"[{name}]({HUB}/{repo})"
    return name


def _label(row: pd.Series) -> str:
    return f"{row.get('model')} · {row.get('approach')} · {row.get('benchmark')}"


def filter_rows(
    df: pd.DataFrame,
    approaches: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
    search: str = "",
) -> pd.DataFrame:
    """Rows whose approach, model, benchmark and model type are among those chosen (None, or empty
    models, = all) and whose model, approach or benchmark contains every word of `search`."""
    mask = pd.Series(True, index=df.index)
    if types is not None:
        mask &= pd.Series([_model_type(r) for _, r in df.iterrows()], index=df.index).isin(list(types))
    for word in search.lower().split():
        text = df["model"].astype(str) + " " + df["approach"].astype(str) + " " + df["benchmark"].astype(str)
        mask &= text.str.lower().str.contains(word, regex=False)
    if approaches is not None:
        mask &= df["approach"].isin(list(approaches))
    if models:  # an empty model selection means every model (the dropdown starts empty)
        mask &= df["model"].isin(list(models))
    if benchmarks is not None:
        mask &= df["benchmark"].isin(list(benchmarks))
    return df[mask]


def _model_type(row: pd.Series) -> str:
    kind = _get(row, "model_type")
    if isinstance(kind, str) and kind:
        return kind
    return "adapter" if _json(_get(row, "manifest")).get("model", {}).get("is_adapter") else "-"


def overall_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run, best pass@1 first: its interval, Easy/Medium/Hard with theirs, pass@k, reference
    metrics, cost, model metadata and links."""
    ks = sorted(
        {k for v in df.get("pass@k", []) for k in _json(v) if k != "pass@1"}, key=lambda k: int(k[5:])
    )
    rows = []
    for _, r in df.iterrows():
        passk = _json(_get(r, "pass@k"))
        rows.append(
            {
                "model": _model_cell(r),
                "type": _model_type(r),
                "parameters": _int(_get(r, "parameters")),
                "precision": _get(r, "precision") or "-",
                "approach": r.get("approach"),
                "benchmark": r.get("benchmark"),
                "split": _get(r, "split"),
                "problems": _int(_get(r, "n_problems")),
                "samples": _int(_get(r, "n_samples")),
                "pass@1": _num(r.get("pass@1")),
                "pass@1 95% CI": _ci(
                    _get(r, "pass@1_ci_low"), _get(r, "pass@1_ci_high"), _get(r, "n_problems")
                ),
                **{level: _rate(r, level) for level in DIFFICULTIES},
                **{k: _num(passk.get(k)) for k in ks},
                "tests passed": _num(_get(r, "test_pass_rate")),
                "BLEU": _num(_get(r, "bleu"), 1),
                "CodeBLEU": _num(_get(r, "codebleu")),
                "latency p50 s": _num(_get(r, "latency_p50_s"), 2),
                "latency p95 s": _num(_get(r, "latency_p95_s"), 2),
                "tokens/solved": _num(_get(r, "tokens_per_solved"), 0),
                "manifest": f"[manifest]({r['manifest_url']})",
                # config name (plus the source where two sources share it): the manifest viewer's key
                "run": r["key"],
            }
        )
    out = pd.DataFrame(rows, columns=None if rows else ["model", "approach", "benchmark", "pass@1"])
    return out.sort_values("pass@1", ascending=False, na_position="last", kind="stable").reset_index(
        drop=True
    )


# the overall table's columns shown until the user picks others (the rest stay one click away)
_RUN_COLUMNS = ("model", "type", "parameters", "approach", "benchmark", "problems")
DEFAULT_COLUMNS = (*_RUN_COLUMNS, "pass@1", "pass@1 95% CI", *DIFFICULTIES, "CodeBLEU", "manifest", "run")
# `run` is how a clicked row finds its manifest, so it is always shown
ALWAYS_SHOWN = ("model", "run")


def choose_columns(table: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    """The overall table with only the chosen columns (in the table's order), plus ALWAYS_SHOWN."""
    if columns is None:
        return table
    keep = set(columns) | set(ALWAYS_SHOWN)
    return table[[c for c in table.columns if c in keep]]


def difficulty_table(df: pd.DataFrame) -> pd.DataFrame:
    """pass@1 on Easy/Medium/Hard with CIs (empty where a run has no problem of that level)."""
    rows = []
    for _, r in df.iterrows():
        row = {"model": _model_cell(r), "approach": r.get("approach"), "benchmark": r.get("benchmark")}
        for level in DIFFICULTIES:
            row[level] = _num(_get(r, level))
            row[f"{level} 95% CI"] = _ci(
                _get(r, f"{level}_ci_low"), _get(r, f"{level}_ci_high"), _get(r, f"{level}_n")
            )
        row["overall"] = _num(r.get("pass@1"))
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["model", "approach", "benchmark", *DIFFICULTIES])


def benchmark_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, approach), pass@1 and its CI per benchmark side by side."""
    benchmarks = sorted(df["benchmark"].dropna().unique()) if len(df) else []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for _, r in df.iterrows():
        row = rows.setdefault((str(r.get("model")), str(r.get("approach"))), {"approach": r.get("approach")})
        if "](" not in row.get("model", ""):  # a run that names the model's repo supplies the link
            row["model"] = _model_cell(r)
        row[f"{r['benchmark']} pass@1"] = _num(r.get("pass@1"))
        row[f"{r['benchmark']} 95% CI"] = _ci(
            _get(r, "pass@1_ci_low"), _get(r, "pass@1_ci_high"), _get(r, "n_problems")
        )
    cols = ["model", "approach", *[f"{b} {c}" for b in benchmarks for c in ("pass@1", "95% CI")]]
    return pd.DataFrame(list(rows.values()), columns=cols)


def _taxonomy_counts(row: pd.Series) -> dict[str, float]:
    """Failure category -> sample count (`runtime_error:TypeError`, `wrong_answer`, ...).

    `error_taxonomy` is `letitcode.scoring.taxonomy.taxonomy()`'s dict (its `counts`) or a bare counts dict;
    without it, the failure statuses of `status_counts` stand in.
    """
    tax = _json(_get(row, "error_taxonomy"))
    counts = tax.get("counts", tax) if tax else {}
    if not counts:
        counts = {k: v for k, v in _json(_get(row, "status_counts")).items() if k != "passed"}
    return {
        str(k): float(v) for k, v in counts.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def taxonomy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Failures by category per run, as counts, plus the run's sample count to read them against."""
    counts = [_taxonomy_counts(r) for _, r in df.iterrows()]
    categories = sorted({c for cs in counts for c in cs})
    rows = []
    for (_, r), cs in zip(df.iterrows(), counts, strict=True):
        row = {"model": _model_cell(r), "approach": r.get("approach"), "benchmark": r.get("benchmark")}
        row["samples"] = _get(r, "n_samples")
        row["failed"] = int(sum(cs.values()))
        row.update({c: int(cs.get(c, 0)) for c in categories})
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", "approach", "benchmark", "samples", "failed", *categories])


_FORMATS = {  # display only: cells keep their numbers, so a column still sorts numerically
    "parameters": lambda v: f"{v / 1e9:.2f}B" if v >= 1e9 else f"{v / 1e6:.0f}M",
    "problems": "{:.0f}",
    "samples": "{:.0f}",
    "failed": "{:.0f}",
    "BLEU": "{:.1f}",
    "latency p50 s": "{:.2f}",
    "latency p95 s": "{:.2f}",
    "tokens/solved": "{:.0f}",
}


def styled(table: pd.DataFrame) -> Any:
    """The table as Gradio shows it: rates with three decimals, counts as integers, "-" where absent."""
    formats = {c: _FORMATS.get(c, "{:.3f}") for c in table.columns if pd.api.types.is_numeric_dtype(table[c])}
    return table.style.format(formats, na_rep="-")


_NUMBER_COLUMNS = ("pass@1", "problems", "samples", "parameters")


def _datatypes(table: pd.DataFrame) -> list[str]:
    """Gradio column types: links render as Markdown, numbers sort numerically."""
    return [
        "markdown"
        if col in ("model", "manifest")
        else "number"
        if pd.api.types.is_numeric_dtype(table[col]) or col in _NUMBER_COLUMNS
        else "str"
        for col in table.columns
    ]


# ---------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # figures for Gradio, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_difficulty(df: pd.DataFrame) -> Any:
    """pass@1 by difficulty, one bar per run, with the bootstrap CI as error bars."""
    import numpy as np

    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(10, 4 + 0.3 * math.ceil(len(df) / 2)))  # room for the legend below
    n = max(len(df), 1)
    width = 0.8 / n
    x = np.arange(len(DIFFICULTIES))
    for i, (_, r) in enumerate(df.iterrows()):
        vals, lo, hi = (
            np.array([_float(_get(r, f"{lvl}{suffix}")) for lvl in DIFFICULTIES])
            for suffix in ("", "_ci_low", "_ci_high")
        )
        err = np.nan_to_num(np.vstack([np.clip(vals - lo, 0, None), np.clip(hi - vals, 0, None)]))
        bars = ax.bar(
            x + (i - (n - 1) / 2) * width,
            np.nan_to_num(vals),  # a level the run has no problems of draws no bar
            width,
            yerr=err,
            capsize=3,
            ecolor="0.3",
            label=_label(r),
        )
        counts = [_int(_get(r, f"{lvl}_n")) for lvl in DIFFICULTIES]
        # every bar says its value and n, so a 0 reads as "measured 0 of n", not as a missing bar
        ax.bar_label(
            bars,
            [
                "" if math.isnan(v) else f"{v:.2f}" + ("" if c is None else f"\nn={c}")
                for v, c in zip(vals, counts, strict=True)
            ],
            fontsize=7,
            padding=2,
        )
    ax.set_xticks(x, DIFFICULTIES)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass@1 (95% CI)")
    ax.set_title("pass@1 by difficulty")
    if len(df):  # below the axes: run labels are long, and the bars need the width
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_taxonomy(df: pd.DataFrame) -> Any:
    """Failure categories as a share of each run's samples, stacked."""
    plt = _pyplot()

    table = taxonomy_table(df)
    categories = list(table.columns[5:])
    fig, ax = plt.subplots(figsize=(10, max(3.0, 1.5 + 0.45 * len(table))))
    labels = [_label(r) for _, r in df.iterrows()]
    bottom = [0.0] * len(table)
    for cat in categories:
        share = [c / s if s else 0.0 for c, s in zip(table[cat], table["samples"].fillna(0), strict=True)]
        ax.barh(
            labels, share, left=bottom, label=cat, color=plt.get_cmap("tab20")(categories.index(cat) % 20)
        )
        bottom = [b + v for b, v in zip(bottom, share, strict=True)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples")
    ax.set_title("error taxonomy")
    if categories:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


# ---------------------------------------------------------------- app


def _manifest(df: pd.DataFrame, key: str | None) -> dict[str, Any]:
    hit = df[df["key"] == key]
    return _json(hit.iloc[0].get("manifest")) if len(hit) else {}


def build_app(df: pd.DataFrame, sources: Sequence[str]) -> Any:
    """The Blocks app: filters on top; overall, difficulty, benchmark and taxonomy tabs; a manifest viewer."""
    import gradio as gr  # here, not at the top: a bad --results fails fast, before this slow import

    approaches = sorted(df["approach"].dropna().unique())
    models = sorted(df["model"].dropna().unique())
    benchmarks = sorted(df["benchmark"].dropna().unique())
    types = sorted({_model_type(r) for _, r in df.iterrows()})
    all_columns = list(overall_table(df).columns)
    shown = [c for c in all_columns if c in DEFAULT_COLUMNS]

    def views(
        a: list[str], m: list[str], b: list[str], t: list[str], q: str, cols: list[str]
    ) -> tuple[Any, ...]:
        sub = filter_rows(df, a, m, b, t, q or "")
        return (
            choose_columns(overall_table(sub), cols),
            difficulty_table(sub),
            plot_difficulty(sub),
            benchmark_table(sub),
            taxonomy_table(sub),
            plot_taxonomy(sub),
        )

    def refresh(*choices: Any) -> tuple[Any, ...]:
        # columns can change with the filter (pass@k, benchmarks, error categories): send their types along
        return tuple(
            gr.Dataframe(value=styled(v), datatype=_datatypes(v)) if isinstance(v, pd.DataFrame) else v
            for v in views(*choices)
        )

    def frame(table: pd.DataFrame, elem_id: str, label: str) -> Any:
        return gr.Dataframe(
            styled(table), datatype=_datatypes(table), interactive=False, elem_id=elem_id, label=label
        )

    first = views(approaches, [], benchmarks, types, "", shown)
    with gr.Blocks(title="LetItCode leaderboard", analytics_enabled=False) as demo:
        gr.Markdown(
            "# LetItCode leaderboard\n"
            "Execution-based pass@1 of code LLMs on LeetCode-style benchmarks. Intervals are 95%: Wilson with "
            "one sample per problem, BCa bootstrap over problems otherwise; n is the number of problems, and "
            f"*small n* marks fewer than {SMALL_N}. Sort a table from a column's ⋮ menu; click a row of the "
            f"overall table to see its manifest. Sources: {', '.join(f'`{s}`' for s in sources)}"
        )
        with gr.Row():
            f_search = gr.Textbox(
                label="Search", placeholder="model, approach or benchmark", elem_id="search", scale=2
            )
            f_type = gr.CheckboxGroup(types, value=types, label="Model type", elem_id="filter-type")
        with gr.Row():
            f_approach = gr.CheckboxGroup(
                approaches, value=approaches, label="Approach", elem_id="filter-approach"
            )
            f_model = gr.Dropdown(
                models, value=[], multiselect=True, label="Model (empty = all)", elem_id="filter-model"
            )
            f_bench = gr.CheckboxGroup(
                benchmarks, value=benchmarks, label="Benchmark", elem_id="filter-benchmark"
            )
        with gr.Accordion("Columns", open=False):
            f_cols = gr.CheckboxGroup(all_columns, value=shown, label="Overall columns", elem_id="columns")
        with gr.Tabs():
            with gr.Tab("Overall"):
                t_overall = frame(first[0], "overall", "Overall")
                run = gr.Dropdown(
                    list(df["key"]), value=None, label="Manifest of run", elem_id="manifest-run"
                )
                manifest = gr.JSON(label="Manifest", open=True, elem_id="manifest")
            with gr.Tab("By difficulty"):
                t_diff = frame(first[1], "by-difficulty", "pass@1 by difficulty")
                p_diff = gr.Plot(first[2], label="pass@1 by difficulty")
            with gr.Tab("By benchmark"):
                t_bench = frame(first[3], "by-benchmark", "pass@1 by benchmark")
            with gr.Tab("Error taxonomy"):
                t_tax = frame(first[4], "taxonomy", "Failures by category (sample counts)")
                p_tax = gr.Plot(first[5], label="Error taxonomy")

        outputs = [t_overall, t_diff, p_diff, t_bench, t_tax, p_tax]
        inputs = [f_approach, f_model, f_bench, f_type, f_search, f_cols]
        for f in inputs:
            f.change(refresh, inputs, outputs)

        def pick(evt: gr.SelectData) -> str | None:
            # row_value is the row as displayed (after any sort); its last cell is the run key
            key = (evt.row_value or [None])[-1]
            return key if key in set(df["key"]) else None

        t_overall.select(pick, None, run)
        run.change(lambda k: _manifest(df, k), run, manifest)
    return demo


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--results",
        action="append",
        metavar="DIR_OR_HUB_ID",
        help=f"run folder, result-dataset folder or Hub dataset id ORG/NAME[@REV]; repeatable (default: ${ENV_VAR})",
    )
    # None leaves Gradio's own defaults (and GRADIO_SERVER_NAME/PORT, which a Space sets) in charge
    p.add_argument("--host", default=None, help="interface to bind (default: Gradio's, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860)")
    args = p.parse_args(argv)
    if not args.results:
        args.results = [s for s in re.split(r"[,\s]+", os.environ.get(ENV_VAR, "")) if s]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    df = load_leaderboard(args.results)
    demo = build_app(df, args.results)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        allowed_paths=[f for f in df["manifest_file"] if f],  # local manifests only, for their links
        footer_links=["gradio"],
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
