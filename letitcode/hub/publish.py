"""Hub publishing: one place that talks to `huggingface_hub.HfApi`.

Every push goes through `api()` so tests can swap the network boundary (a recording `HfApi` double)
and nothing else. `require_token()` is called before any long work starts, so a missing token fails in
the first second, not after an hour of generation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode.data.benchmarks import HUB_DEFAULTS
from letitcode.data.benchmarks.registry import REGISTRY
from letitcode.errors import UserError
from letitcode.hub.spec import approach_of, looks_like_hub_id
from letitcode.results import dataset as results_dataset

_API_FACTORY: Any = None  # tests set this to a callable returning an HfApi double


def set_api_factory(factory: Any) -> None:
    """Replace how `api()` builds its client (tests: a recorded HfApi); None restores the real one."""
    global _API_FACTORY
    _API_FACTORY = factory


def api() -> Any:
    if _API_FACTORY is not None:
        return _API_FACTORY()
    from huggingface_hub import HfApi

    return HfApi()


def require_token(action: str) -> str:
    """The Hub token for `action`, or a clear error before any work starts."""
    from huggingface_hub import get_token

    token = get_token()
    if _API_FACTORY is not None and not token:
        token = "test-token"  # the recorded double needs no credentials
    if not token:
        raise UserError(
            f"{action} needs a Hub token with write access: set HF_TOKEN or run `hf auth login` first "
            "(or drop the push flag to keep results local)"
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") and _API_FACTORY is None:
        raise UserError(
            f"{action} needs the Hub, but HF_HUB_OFFLINE=1 is set: unset it, or drop the push flag"
        )
    return token


def push_folder(
    repo_id: str,
    folder: str | Path,
    *,
    repo_type: str = "model",
    commit_message: str,
    private: bool = False,
    path_in_repo: str | None = None,
    ignore_patterns: list[str] | None = None,
) -> str:
    """Create the repo if needed and upload `folder` in one commit. Returns the commit URL."""
    client = api()
    client.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = client.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type=repo_type,
        path_in_repo=path_in_repo,
        commit_message=commit_message,
        ignore_patterns=ignore_patterns,
    )
    return str(getattr(info, "commit_url", info))


# --- result datasets, model-index scores, metric Spaces (issue 3) -----------------------------------------


@dataclass
class PushArguments:
    """The publishing flags of `evaluate/run.py` and `evaluate/push.py`."""

    push_results: str | None = field(
        default=None, metadata={"help": "ORG/NAME: upload the run as (a config of) this result dataset repo"}
    )
    push_to_card: str | None = field(
        default=None, metadata={"help": "ORG/NAME: write the scores into this model repo's card model-index"}
    )
    private: bool = field(default=False, metadata={"help": "create the result dataset repo as private"})

    @property
    def any(self) -> bool:
        return bool(self.push_results or self.push_to_card)


def _missing(e: BaseException) -> str | None:
    """'repo' or 'file' for the Hub's not-found errors, None for anything else."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(e, RepositoryNotFoundError):
        return "repo"
    if isinstance(e, EntryNotFoundError | RevisionNotFoundError):
        return "file"
    return None


def download_file(repo_id: str, filename: str, *, repo_type: str = "model") -> Path | None:
    """A file of a Hub repo (through `api()`, so tests fake it); None when the repo has no such file.
    A missing repo is a UserError."""
    try:
        return Path(api().hf_hub_download(repo_id=repo_id, filename=filename, repo_type=repo_type))
    except Exception as e:
        kind = _missing(e)
        if kind == "file":
            return None
        if kind == "repo":
            raise UserError(
                f"{repo_type} repo {repo_id!r} does not exist on the Hub or is not visible with your token"
            ) from e
        raise


def snapshot(repo_id: str, *, repo_type: str = "dataset", allow_patterns: list[str] | None = None) -> Path:
    """A local snapshot of (part of) a Hub repo, through `api()`."""
    return Path(api().snapshot_download(repo_id=repo_id, repo_type=repo_type, allow_patterns=allow_patterns))


def push_results(repo_id: str, run_dirs: list[str | Path], *, private: bool = False) -> str:
    """Upload runs as configs of the result dataset `repo_id`: creates it if needed, keeps the configs
    already there (the card is re-rendered over old and new), replaces a config of the same name."""
    require_token(f"pushing results to {repo_id}")
    client = api()
    client.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    try:
        existing: Path | None = snapshot(
            repo_id, allow_patterns=["data/*/summary.parquet", "data/*/manifest.json"]
        )
    except Exception as e:
        if _missing(e) is None:
            raise
        existing = None  # a new, empty repo
    stage = results_dataset.stage_for_push(run_dirs, existing)
    try:
        configs = [s["config"] for s in results_dataset.read_config_summaries(stage)]
        ours = set()
        for d in run_dirs:
            src = Path(d)
            src = src if (src / "data").is_dir() and not (src / "results.json").exists() else src / "dataset"
            ours |= {p.name for p in (src / "data").glob("*/") if (p / "summary.parquet").exists()}
        info = client.upload_folder(
            repo_id=repo_id,
            folder_path=str(stage),
            repo_type="dataset",
            commit_message=f"Add LetItCode results: {', '.join(sorted(ours))}",
            allow_patterns=["README.md", *[f"data/{c}/*" for c in sorted(ours)]],
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"pushed {len(ours)} config(s) to dataset {repo_id} ({len(configs)} in its card)")
    return str(getattr(info, "commit_url", info))


def _bench_title(name: str) -> str:

    return REGISTRY[name].title if name in REGISTRY else name


def eval_results_for(
    results: dict[str, Any], manifest: dict[str, Any], *, results_repo: str | None = None
) -> list[Any]:
    """`huggingface_hub.EvalResult`s for a run: pass@k (with 95% CI in metric args), pass@1 per
    difficulty, BLEU and CodeBLEU where they exist, and the test-case pass rate. The approach is the
    metric config, so zero-shot and LoRA scores of one benchmark live side by side in one model-index."""
    from huggingface_hub import EvalResult, constants

    bench = manifest.get("benchmark") or {}
    name = str(bench.get("name") or results.get("benchmark"))
    source = str(bench.get("source") or name)
    dataset_type = source if looks_like_hub_id(source) else HUB_DEFAULTS.get(name, source)
    approach = approach_of(manifest)
    split = bench.get("split")
    common = {
        "task_type": "text-generation",
        "task_name": "Code Generation",
        "dataset_type": dataset_type,
        "dataset_name": f"{_bench_title(name)}" + (f" ({split})" if split else ""),
        "dataset_split": split,
        "dataset_revision": bench.get("revision"),
        "metric_config": approach,
    }
    if results_repo:
        common.update(source_name="LetItCode", source_url=f"{constants.ENDPOINT}/datasets/{results_repo}")
    decoding = manifest.get("decoding") or {}
    run_args = {"n_problems": results.get("n_problems"), "samples_per_problem": decoding.get("n")}
    if decoding:
        run_args["temperature"] = decoding.get("temperature")
    run_args = {k: v for k, v in run_args.items() if v is not None}
    ci = results.get("ci") or {}
    out = []
    for key, value in results.items():
        if key.startswith("pass@") and value is not None:
            args = {**run_args, **({"ci95": [round(x, 4) for x in ci[key]]} if key in ci else {})}
            out.append(
                EvalResult(
                    metric_type=key,
                    metric_name=f"{key} ({approach})",
                    metric_value=round(float(value), 4),
                    metric_args=args,
                    **common,
                )
            )
    for level, row in (results.get("by_difficulty") or {}).items():
        if row.get("pass@1") is None:
            continue
        lvl_ci = (row.get("ci") or {}).get("pass@1")
        args = {
            "n_problems": row.get("n_problems"),
            **({"ci95": [round(x, 4) for x in lvl_ci]} if lvl_ci else {}),
        }
        out.append(
            EvalResult(
                metric_type="pass@1",
                metric_name=f"pass@1 {level} ({approach})",
                metric_value=round(float(row["pass@1"]), 4),
                metric_args=args,
                **common,
            )
        )
    for key, metric_type, label in (
        ("bleu", "bleu", "BLEU"),
        ("codebleu", "codebleu", "CodeBLEU"),
        ("test_pass_rate", "test_pass_rate", "test cases passed"),
    ):
        if results.get(key) is not None:
            out.append(
                EvalResult(
                    metric_type=metric_type,
                    metric_name=f"{label} ({approach})",
                    metric_value=round(float(results[key]), 4),
                    metric_args=run_args or None,
                    **common,
                )
            )
    return out


def _identity(r: Any) -> tuple:
    return (
        r.task_type,
        r.dataset_type,
        r.dataset_config,
        r.dataset_split,
        r.dataset_revision,
        r.metric_type,
        r.metric_name,
        r.metric_config,
    )


def merge_eval_results(card: Any, new_results: list[Any], *, model_name: str) -> Any:
    """Put `new_results` into `card`'s model-index in place: a result with the same task, dataset,
    metric and config is replaced (value and args), others are appended; other metadata is untouched."""
    existing = list(card.data.eval_results or [])
    index = {_identity(r): i for i, r in enumerate(existing)}
    for r in new_results:
        if _identity(r) in index:
            existing[index[_identity(r)]] = r
        else:
            index[_identity(r)] = len(existing)
            existing.append(r)
    card.data.eval_results = existing
    if not card.data.model_name:
        card.data.model_name = model_name
    return card


def push_to_card(repo_id: str, run_dir: str | Path, *, results_repo: str | None = None) -> str:
    """Write a run's scores into the model-index of model repo `repo_id`'s card, keeping the rest of the
    card (its other metadata and text). The card is validated by reloading it with ModelCard.load."""
    import json

    from huggingface_hub import ModelCard, ModelCardData

    require_token(f"writing scores to the card of {repo_id}")
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    current = download_file(repo_id, "README.md", repo_type="model")
    if current is not None:
        card = ModelCard.load(current)
    else:
        data = ModelCardData(tags=["letitcode"])
        card = ModelCard(
            f"---\n{data.to_yaml()}\n---\n\n# {repo_id.split('/')[-1]}\n\nEvaluation scores written by LetItCode.\n"
        )
    merge_eval_results(
        card,
        eval_results_for(results, manifest, results_repo=results_repo),
        model_name=repo_id.split("/")[-1],
    )
    with tempfile.TemporaryDirectory(prefix="letitcode-card-") as tmp:
        path = Path(tmp) / "README.md"
        card.save(path)
        ModelCard.load(path)  # the Hub's own parser must accept what we upload
        info = api().upload_file(
            path_or_fileobj=str(path),
            path_in_repo="README.md",
            repo_id=repo_id,
            repo_type="model",
            commit_message=f"Add LetItCode scores ({results.get('benchmark')}, {results.get('approach')})",
        )
    print(f"wrote {len(card.data.eval_results)} eval results to the card of {repo_id}")
    return str(getattr(info, "commit_url", info))


def push_space(
    repo_id: str, folder: str | Path, *, sdk: str = "gradio", private: bool = False, commit_message: str
) -> str:
    """Create a Space (`sdk`) if needed and upload `folder` to it in one commit."""
    client = api()
    client.create_repo(repo_id, repo_type="space", space_sdk=sdk, private=private, exist_ok=True)
    info = client.upload_folder(
        repo_id=repo_id, folder_path=str(folder), repo_type="space", commit_message=commit_message
    )
    return str(getattr(info, "commit_url", info))


LEADERBOARD_DIR = Path(__file__).resolve().parents[2] / "leaderboard"
_LEADERBOARD_FILES = ("app.py", "README.md", "requirements.txt")


def stage_leaderboard_space(out_dir: str | Path) -> Path:
    """The leaderboard Space folder: `leaderboard/`'s app.py, README.md (the Space header) and
    requirements.txt, plus the `letitcode` package's source beside app.py, so the app imports the same
    reader, intervals and errors on the Space as in the repo without pip-installing letitcode (whose
    dependencies are torch and the training stack). Push it with `push_space`."""
    out = Path(out_dir)
    missing = [f for f in _LEADERBOARD_FILES if not (LEADERBOARD_DIR / f).is_file()]
    if missing:
        raise UserError(
            f"{LEADERBOARD_DIR}: the leaderboard folder lacks {', '.join(missing)} (needs a checkout)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in _LEADERBOARD_FILES:
        shutil.copy2(LEADERBOARD_DIR / name, out / name)
    package = Path(__file__).resolve().parents[1]
    target = out / "letitcode"
    if target.exists():
        shutil.rmtree(target)
    # leaderboard_app.py is app.py itself (a link to it); caches are this machine's
    shutil.copytree(
        package, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "leaderboard_app.py")
    )
    return out


def publish_run(run_dir: str | Path, push: PushArguments) -> list[str]:
    """What `--push-results` / `--push-to-card` ask for, after a run finished. Returns the commit URLs."""
    urls = []
    if push.push_results:
        urls.append(push_results(push.push_results, [run_dir], private=push.private))
    if push.push_to_card:
        urls.append(push_to_card(push.push_to_card, run_dir, results_repo=push.push_results))
    return urls


_SPACE_REQUIREMENTS = ("evaluate", "datasets", "numpy", "tqdm")
_CODEBLEU_REQUIREMENTS = ("codebleu", "tree-sitter", "tree-sitter-python")


def stage_metric_space(metric_dir: str | Path, out_dir: str | Path) -> Path:
    """A Space folder for one `evaluate` metric folder: the metric script, its local modules (the sandbox's
    files, linked into the folder in the repo and copied as real files here) and card, `app.py` (a Gradio
    widget) and `requirements.txt` pinned to the versions installed here. Nothing needs `letitcode`."""
    from importlib import metadata

    from huggingface_hub import SpaceCard

    metric_dir, out = Path(metric_dir), Path(out_dir)
    name = metric_dir.name
    script = metric_dir / f"{name}.py"
    if not script.exists() or not (metric_dir / "README.md").exists():
        raise UserError(f"{metric_dir}: a metric folder needs {name}.py and README.md")
    out.mkdir(parents=True, exist_ok=True)
    for p in metric_dir.iterdir():
        if p.is_file() and p.suffix in (".py", ".md", ".txt", ".json"):
            shutil.copy2(p, out / p.name)
    shutil.copy2(metric_dir.parent / "space_app.py", out / "app.py")
    card = SpaceCard.load(out / "README.md")
    card.data.sdk = "gradio"
    card.data.app_file = "app.py"
    card.data.sdk_version = metadata.version("gradio")
    card.save(out / "README.md")
    source = script.read_text()
    libs = list(_SPACE_REQUIREMENTS) + (list(_CODEBLEU_REQUIREMENTS) if "codebleu" in source else [])
    (out / "requirements.txt").write_text("".join(f"{lib}=={metadata.version(lib)}\n" for lib in libs))
    return out


def push_metric_spaces(org: str, metric_dirs: list[str | Path], *, private: bool = False) -> dict[str, str]:
    """Publish each metric folder as the Space `org/<name>` (Gradio SDK, tagged evaluate/metric)."""
    require_token(f"publishing metrics to {org}")
    urls = {}
    for d in metric_dirs:
        name = Path(d).name
        with tempfile.TemporaryDirectory(prefix=f"letitcode-space-{name}-") as tmp:
            stage = stage_metric_space(d, tmp)
            urls[name] = push_space(
                f"{org}/{name}", stage, private=private, commit_message=f"Publish the {name} metric"
            )
    return urls
