"""The study in one command: every approach of the brief on the same problems, then one report.

A plan (``experiments/plans/<preset>.yaml``) names the model, the benchmarks, the SFT data, the arms
(in-context strategies and fine-tuning methods) and which arms each research question compares. Running it:

1. **prepare**: load every benchmark, pick one fixed set of task ids per benchmark (difficulty-stratified),
   decontaminate the SFT data against every problem that will be evaluated, split it by problem exactly as
   ``sft/train.py`` will, and measure contamination (13-gram overlap, temporal split) per benchmark;
2. **train**: one ``sft/train.py`` subprocess per fine-tuning arm (its own resume covers a kill mid-run);
3. **evaluate**: one subprocess per model (the in-context arms share the base model; each fine-tuned arm has
   its own) runs ``letitcode.pipeline.run_eval`` on every benchmark with the model loaded once, and records
   each arm's peak memory (GPU when there is one, in GiB); every training and evaluation subprocess is pinned
   to one GPU (``CUDA_VISIBLE_DEVICES``; it sees ``cuda:0``), and with ``serve`` each model is evaluated through
   one OpenAI-compatible server (vLLM, ``transformers serve`` or a command; ``letitcode/server.py``);
4. **collect**: every run goes into one result dataset (``OUTPUT_DIR/dataset``, what the leaderboard reads),
   and ``letitcode.study.report`` writes ``report.md`` and its PNGs.

Every unit (prepare, each training, each (arm, benchmark) evaluation) leaves ``study_done.json`` holding the
fingerprint of its configuration; a rerun skips units whose fingerprint matches, so a killed study resumes,
and changing one arm in the plan redoes only that arm.

Output layout::

    OUTPUT_DIR/plan.json                       the resolved plan
    OUTPUT_DIR/prepare.json                    task ids, skipped benchmarks, SFT split, contamination
    OUTPUT_DIR/data/                           the decontaminated SFT pool and its train/validation rows
    OUTPUT_DIR/train/<model>-<arm>/            sft/train.py output (adapter or model, trainer_state.json, loss.png)
    OUTPUT_DIR/train/<model>-<arm>-merged      link to its merged/ model, where the plan merges adapters
    OUTPUT_DIR/runs/<arm>/<benchmark>/         run_eval output (samples.jsonl, results.json, manifest.json, dataset/)
    OUTPUT_DIR/runs/<arm>/memory.json          peak memory of the arm's evaluation process
    OUTPUT_DIR/timings.json                    measured wall time of every unit
    OUTPUT_DIR/dataset/                        all runs as one result dataset (leaderboard input)
    OUTPUT_DIR/report.md, OUTPUT_DIR/*.png     the report
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode.errors import UserError
from letitcode.records import write_json

REPO = Path(__file__).resolve().parents[2]
PLANS_DIR = REPO / "experiments" / "plans"
TRAIN_SCRIPT = REPO / "sft" / "train.py"
DONE = "study_done.json"
NGRAM = 13  # contamination n-gram length (word tokens), as in GPT-3's and Llama 2's contamination studies

ROLES = ("heldout", "extra")  # heldout: a LeetCode benchmark every approach is compared on
SFT_TRAIN = "sft_train_subset"  # benchmark labels the study derives from the SFT split (overfitting evidence)
SFT_VALIDATION = "sft_validation"
TRAIN_METHODS = (
    "lora",
    "qlora",
    "dora",
    "full",
    "ia3",
)  # as letitcode.training.trainer.METHODS (not imported: TRL)


# ------------------------------------------------------------------------------------------------ the plan


@dataclass
class BenchmarkSpec:
    name: str  # label: directory name and table row
    benchmark: str  # a letitcode.data.benchmarks benchmark
    dataset: str | None = None  # local path or Hub id[@revision]; None: the source's default
    split: str | None = None
    revision: str | None = None
    limit: int | None = None  # difficulty-stratified subset; the same task ids for every arm
    role: str = "extra"  # heldout | extra
    optional: bool = False  # skipped (and said so in the report) when its data is missing
    fallback: bool = False  # evaluated only when no earlier heldout benchmark is available
    # few-shot/RAG pool, or a list of alternatives (the first whose data exists); "{sft_pool}" = the
    # decontaminated SFT data
    exemplar_dataset: str | list[str] | None = None
    timeout_s: float | None = None


@dataclass
class TrainSpec:
    method: str
    args: dict[str, Any] = field(default_factory=dict)  # extra sft/train.py options for this arm
    accelerate_config: str | None = None  # run under `accelerate launch --config_file` (multi-GPU, ZeRO-3)


@dataclass
class ArmSpec:
    name: str
    strategy: str = "zero_shot"
    k_shots: int | None = None
    retriever: str | None = None
    max_new_tokens: int | None = None
    train: TrainSpec | None = None

    @property
    def kind(self) -> str:
        return "finetune" if self.train else "icl"


@dataclass
class SFTSpec:
    dataset: str | None = None  # local file or Hub id[@revision]; --dataset overrides
    revision: str | None = None
    cutoff_date: str | None = (
        None  # latest problem date in the SFT data: later eval problems = temporal split
    )
    cutoff_source: str | None = None  # where that date comes from
    license: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_steps: int | None = None
    # evaluate (and so serve) adapters merged into their base: unmerged LoRA/DoRA generation was 2.5-5x slower
    # than the base model's on a 2-core CPU; on a GPU the gap is small, and merged copies cost disk
    merge: bool = False
    args: dict[str, Any] = field(default_factory=dict)  # sft/train.py options shared by every method
    accelerate_config: str | None = None


@dataclass
class Comparisons:
    icl: list[str] = field(default_factory=lambda: ["zero_shot", "few_shot", "cot"])
    finetune: list[str] = field(default_factory=lambda: ["lora", "qlora"])
    four: list[str] = field(default_factory=lambda: ["zero_shot", "few_shot", "lora", "qlora"])
    full_vs_peft: list[str] = field(default_factory=lambda: ["full", "lora", "dora"])
    rag: str = "rag"
    rag_baselines: list[str] = field(default_factory=lambda: ["zero_shot", "few_shot", "lora", "qlora"])


@dataclass
class Deployment:
    hardware: str = "this machine"
    price_per_hour_usd: float = 0.0
    price_source: str = ""


@dataclass
class OverfittingSpec:
    limit: int = 10  # problems from each side of the SFT split (trained on / held out)


@dataclass
class StudyPlan:
    name: str
    description: str = ""
    model: str = "embedded"
    dtype: str = "bfloat16"
    batch_size: int = 8
    max_new_tokens: int = 256
    seed: int = 0
    backend: str = "local"
    backend_options: dict[str, Any] = field(
        default_factory=dict
    )  # extra local-backend options, e.g. {mode: static}
    # Where each unit runs (letitcode/devices.py): auto = one GPU when there is one. Every training and evaluation
    # subprocess is pinned to that one GPU (CUDA_VISIBLE_DEVICES), never spread over all of them; only arms with
    # an accelerate_config (multi-GPU DDP/ZeRO-3/FSDP) see every GPU.
    device: str = "auto"
    attn_implementation: str = "auto"
    quantization: str = "auto"  # auto: QLoRA adapters are evaluated on the 4-bit base they were trained on
    # evaluate every arm through an OpenAI-compatible server started per model: vllm | transformers | a command
    # with {model} and {port} (letitcode/server.py); adapters are served by vLLM with --enable-lora
    serve: str | None = None
    serve_ready_timeout_s: float = 900.0
    endpoint: str | None = None
    workers: int | None = None
    # torch/OpenMP threads per training or evaluation process (OMP_NUM_THREADS; a value already in the
    # environment wins). On cores shared with other jobs, 1 thread avoids OpenMP oversubscription: measured here
    # 5.5 s against 28 s for the same generation, 17 s against 96 s for 3 LoRA steps.
    cpu_threads: int | None = None
    k_shots: int = 3
    retriever: str = "bm25"
    estimate: str = ""  # the expected duration and how it was estimated
    benchmarks: list[BenchmarkSpec] = field(default_factory=list)
    arms: list[ArmSpec] = field(default_factory=list)
    sft: SFTSpec = field(default_factory=SFTSpec)
    comparisons: Comparisons = field(default_factory=Comparisons)
    deployment: Deployment = field(default_factory=Deployment)
    overfitting: OverfittingSpec = field(default_factory=OverfittingSpec)
    source: str = ""  # the YAML file the plan came from

    def arm(self, name: str) -> ArmSpec:
        for a in self.arms:
            if a.name == name:
                return a
        raise UserError(
            f"plan {self.name!r} has no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyPlan:
        d = dict(d)
        d["benchmarks"] = [BenchmarkSpec(**b) for b in d.get("benchmarks", [])]
        d["arms"] = [
            ArmSpec(**{**a, "train": TrainSpec(**a["train"]) if a.get("train") else None})
            for a in d.get("arms", [])
        ]
        d["sft"] = SFTSpec(**d.get("sft", {}))
        d["comparisons"] = Comparisons(**d.get("comparisons", {}))
        d["deployment"] = Deployment(**d.get("deployment", {}))
        d["overfitting"] = OverfittingSpec(**d.get("overfitting", {}))
        return cls(**d)


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_data_dir() -> Path:
    """Where `{data}` in a plan points: $LETITCODE_DATA, else the shared data next to the checkout."""
    env = os.environ.get("LETITCODE_DATA")
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_keys(d: Any, cls: type, where: str, *, drop: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise UserError(f"{where}: expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - _fields(cls) - set(drop))
    if unknown:
        raise UserError(
            f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(_fields(cls) - set(drop)))}"
        )
    return dict(d)


def plan_file(preset_or_path: str) -> Path:
    """A preset name (`micro`) or a path to a plan YAML."""
    p = Path(preset_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise UserError(f"plan file {preset_or_path!r} does not exist")
        return p
    path = PLANS_DIR / f"{preset_or_path}.yaml"
    if not path.exists():
        presets = sorted(q.stem for q in PLANS_DIR.glob("*.yaml"))
        raise UserError(
            f"unknown preset {preset_or_path!r}; presets: {', '.join(presets)} (or pass --plan FILE)"
        )
    return path


def _substitute(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in variables.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


def load_plan(
    preset_or_path: str,
    *,
    data_dir: str | Path | None = None,
    model: str | None = None,
    sft_dataset: str | None = None,
) -> StudyPlan:
    """Read and validate a plan; `{data}` in its strings becomes `data_dir` (see `default_data_dir`)."""
    import yaml

    path = plan_file(preset_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from e
    where = str(path)
    raw = _check_keys(raw, StudyPlan, where, drop=("source",))
    data = str(Path(data_dir).expanduser() if data_dir else default_data_dir())
    raw = _substitute(raw, {"data": data})
    raw.setdefault("name", path.stem)
    benches = []
    for i, b in enumerate(raw.get("benchmarks") or []):
        b = _check_keys(b, BenchmarkSpec, f"{where}: benchmarks[{i}]")
        if "name" not in b or "benchmark" not in b:
            raise UserError(f"{where}: benchmarks[{i}] needs `name` and `benchmark`")
        benches.append(b)
    arms = []
    arms_raw = raw.get("arms") or {}
    if not isinstance(arms_raw, Mapping):
        raise UserError(f"{where}: `arms` must map arm names to their settings")
    for name, a in arms_raw.items():
        a = _check_keys(a or {}, ArmSpec, f"{where}: arms.{name}", drop=("name",))
        if a.get("train") is not None:
            a["train"] = _check_keys(a["train"], TrainSpec, f"{where}: arms.{name}.train")
        arms.append({"name": str(name), **a})
    d = {
        **raw,
        "benchmarks": benches,
        "arms": arms,
        "sft": _check_keys(raw.get("sft") or {}, SFTSpec, f"{where}: sft"),
        "comparisons": _check_keys(raw.get("comparisons") or {}, Comparisons, f"{where}: comparisons"),
        "deployment": _check_keys(raw.get("deployment") or {}, Deployment, f"{where}: deployment"),
        "overfitting": _check_keys(raw.get("overfitting") or {}, OverfittingSpec, f"{where}: overfitting"),
        "source": str(path),
    }
    try:
        plan = StudyPlan.from_dict(d)
    except TypeError as e:
        raise UserError(f"{where}: {e}") from e
    if model:
        plan.model = model
    if sft_dataset:
        plan.sft.dataset = sft_dataset
        plan.sft.revision = None
    validate(plan)
    return plan


def validate(plan: StudyPlan) -> None:
    where = plan.source or plan.name
    from letitcode.data.benchmarks import BENCHMARKS

    names = [b.name for b in plan.benchmarks]
    if len(set(names)) != len(names):
        raise UserError(f"{where}: benchmark names must be unique, got {names}")
    for b in plan.benchmarks:
        if b.benchmark not in BENCHMARKS:
            raise UserError(
                f"{where}: benchmark {b.name!r}: unknown benchmark {b.benchmark!r}; one of {', '.join(BENCHMARKS)}"
            )
        if b.role not in ROLES:
            raise UserError(f"{where}: benchmark {b.name!r}: role must be one of {', '.join(ROLES)}")
        if b.name in (SFT_TRAIN, SFT_VALIDATION):
            raise UserError(
                f"{where}: benchmark name {b.name!r} is reserved for the SFT split the study derives"
            )
        if b.role == "heldout" and b.benchmark not in ("leetcode", "leetcodedataset"):
            raise UserError(
                f"{where}: heldout benchmark {b.name!r} must be a LeetCode benchmark (leetcode, leetcodedataset)"
            )
    if not any(b.role == "heldout" for b in plan.benchmarks):
        raise UserError(
            f"{where}: no benchmark has role: heldout (the LeetCode problems every approach is compared on)"
        )
    arm_names = [a.name for a in plan.arms]
    if len(set(arm_names)) != len(arm_names):
        raise UserError(f"{where}: arm names must be unique")
    for a in plan.arms:
        if a.train and a.train.method not in TRAIN_METHODS:
            raise UserError(
                f"{where}: arms.{a.name}.train.method {a.train.method!r} is not one of {', '.join(TRAIN_METHODS)}"
            )
        if a.train and a.strategy != "zero_shot":
            # a fine-tuned model is evaluated on the prompt it was trained on (prompts.sft_example)
            raise UserError(
                f"{where}: arms.{a.name}: a fine-tuning arm is evaluated zero-shot (the SFT prompt)"
            )
    c = plan.comparisons
    refs = {
        "icl": c.icl,
        "finetune": c.finetune,
        "four": c.four,
        "full_vs_peft": c.full_vs_peft,
        "rag": [c.rag],
        "rag_baselines": c.rag_baselines,
    }
    for key, arms in refs.items():
        for name in arms:
            if name not in arm_names:
                raise UserError(
                    f"{where}: comparisons.{key} names arm {name!r}, which the plan does not define"
                )
    for key, minimum in (("icl", 2), ("finetune", 2), ("four", 2), ("full_vs_peft", 3), ("rag_baselines", 1)):
        if len(refs[key]) < minimum:
            raise UserError(f"{where}: comparisons.{key} needs at least {minimum} arms")
    if any(plan.arm(n).train for n in c.icl):
        raise UserError(f"{where}: comparisons.icl must name in-context arms only")
    if any(not plan.arm(n).train for n in c.finetune):
        raise UserError(f"{where}: comparisons.finetune must name fine-tuning arms only")
    fvp = [plan.arm(n) for n in c.full_vs_peft]
    if (
        not fvp[0].train
        or fvp[0].train.method != "full"
        or any(not a.train or a.train.method == "full" for a in fvp[1:])
    ):
        raise UserError(
            f"{where}: comparisons.full_vs_peft must name the full fine-tuning arm first, then PEFT arms"
        )
    if any(a.train for a in plan.arms) and not plan.sft.dataset:
        raise UserError(
            f"{where}: fine-tuning arms need SFT data: pass --dataset PATH_OR_HUB_ID "
            "(e.g. ../shared/data/leetcodedataset/LeetCodeDataset-v0.2.0-train.jsonl.gz)"
        )
    if plan.deployment.price_per_hour_usd < 0:
        raise UserError(f"{where}: deployment.price_per_hour_usd must be >= 0")


# ------------------------------------------------------------------------------------------------ helpers


def _is_local_spec(spec: str) -> bool:
    from letitcode.data.benchmarks._io import looks_like_hub_id

    return not looks_like_hub_id(spec)


def _missing_data(spec: str | None) -> bool:
    return bool(spec) and _is_local_spec(spec) and not Path(spec).expanduser().exists()  # type: ignore[arg-type]


def _data_advice(plan: StudyPlan) -> str:
    return (
        f"pass --data-dir DIR (a folder holding leetcodedataset/ and mbpp/, e.g. the shared data next to the "
        f"checkout; now {default_data_dir()}) or edit the path in {plan.source or 'the plan'}"
    )


def _done(folder: Path, fp: str) -> bool:
    marker = folder / DONE
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("fingerprint") == fp
    except json.JSONDecodeError:
        return False


def _mark_done(folder: Path, fp: str, **extra: Any) -> None:
    write_json(
        folder / DONE,
        {"fingerprint": fp, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra},
    )


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _log(msg: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def word_ngrams(text: str, n: int = NGRAM) -> set[str]:
    """Word n-grams of a text, after the normalisation used for deduplication (lower case, no punctuation)."""
    from letitcode.data.problem import normalize_text

    toks = normalize_text(text).split()
    return {" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def ngram_overlap(problems: Sequence[Any], corpus: set[str], n: int = NGRAM) -> dict[str, Any]:
    """How many problems' descriptions share at least one word n-gram with `corpus` (a set of n-grams)."""
    hits = [p.task_id for p in problems if word_ngrams(p.description or p.prompt, n) & corpus]
    return {
        "n_problems": len(problems),
        "n_overlap": len(hits),
        "share": len(hits) / len(problems) if problems else None,
        "task_ids": hits,
    }


def temporal_status(problems: Sequence[Any], cutoff: str | None) -> dict[str, Any]:
    """Whether every evaluated problem was released after the SFT data's cutoff date."""
    dates = sorted(str(p.release_date) for p in problems if p.release_date)
    out: dict[str, Any] = {
        "cutoff": cutoff,
        "min_date": dates[0] if dates else None,
        "max_date": dates[-1] if dates else None,
        "n_dated": len(dates),
        "n_problems": len(problems),
    }
    if len(dates) < len(problems):
        out.update(
            temporal=False,
            reason="problems carry no release dates" if not dates else "some problems are undated",
        )
    elif not cutoff:
        out.update(temporal=False, reason="the plan gives no SFT cutoff date")
    elif dates[0] > cutoff:
        out.update(
            temporal=True, reason=f"all problems dated {dates[0]}..{dates[-1]}, after the SFT cutoff {cutoff}"
        )
    else:
        out.update(temporal=False, reason=f"earliest problem {dates[0]} is not after the SFT cutoff {cutoff}")
    return out


def _sft_text(row: Any) -> str:
    """What SFT trains on for one row: the problem (prompt side) and its completion."""
    p = row.problem
    return f"{p.description}\n{p.starter_code}\n{row.completion}"


def _chat_style(model: str) -> str:
    """The model's prompt style by the evaluator's and sft/train.py's rule (`letitcode.prompts.resolve_style`:
    the seed table, then whether its tokenizer has a chat template)."""
    from letitcode import models, prompts

    resolved = models.resolve(model)
    path = Path(resolved.path)
    cfg = path / "tokenizer_config.json"
    has_template = (path / "chat_template.jinja").exists() or (
        cfg.exists() and bool(json.loads(cfg.read_text()).get("chat_template"))
    )
    return prompts.resolve_style(None, model=model, resolved=resolved, has_chat_template=has_template).style


# ------------------------------------------------------------------------------------------------ prepare


def _load_bench(b: BenchmarkSpec, dataset: str | None = None) -> Any:
    from letitcode.data.benchmarks import load_benchmark

    return load_benchmark(b.benchmark, dataset=dataset or b.dataset, split=b.split, revision=b.revision)


def _parseable_lcd_rows(rows: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """Rows that map to executable LeetCodeDataset problems (reference parses, tests parse)."""
    from letitcode.data.benchmarks._io import Rows
    from letitcode.data.benchmarks.leetcodedataset import problem_from_row
    from letitcode.errors import DataError

    wrapper = Rows(list(rows), source)
    out = []
    for i, r in enumerate(rows):
        try:
            problem_from_row(dict(r), i, wrapper)
        except DataError:
            continue
        out.append(dict(r))
    return out


def prepare(plan: StudyPlan, out: Path) -> dict[str, Any]:
    """Task ids per benchmark, the decontaminated SFT pool and its split, contamination; cached in prepare.json."""
    from letitcode.config import EvalConfig
    from letitcode.pipeline import select_problems

    fp = fingerprint(
        {
            "benchmarks": [dataclasses.asdict(b) for b in plan.benchmarks],
            "sft": dataclasses.asdict(plan.sft),
            "overfitting": dataclasses.asdict(plan.overfitting),
            "seed": plan.seed,
            "model": plan.model,
            "train": any(a.train for a in plan.arms),
        }
    )
    cached = out / "prepare.json"
    if _done(out / "data", fp) and cached.exists():
        return json.loads(cached.read_text())
    t0 = time.perf_counter()
    _log("prepare: loading benchmarks and choosing problems")
    benches: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    problems_by_bench: dict[str, list[Any]] = {}
    have_heldout = False
    for b in plan.benchmarks:
        if b.fallback and have_heldout:
            skipped[b.name] = "fallback benchmark, not needed: an earlier heldout benchmark is available"
            continue
        if _missing_data(b.dataset):
            if b.optional or b.fallback:
                skipped[b.name] = f"data not found: {b.dataset}"
                continue
            raise UserError(
                f"benchmark {b.name!r} needs {b.dataset}, which does not exist: {_data_advice(plan)}"
            )
        bench = _load_bench(b)
        cfg = EvalConfig(benchmark=b.benchmark, limit=b.limit, seed=plan.seed)
        chosen = select_problems(bench.problems, cfg)
        problems_by_bench[b.name] = chosen
        benches[b.name] = {
            "spec": dataclasses.asdict(b),
            "task_ids": [p.task_id for p in chosen],
            "manifest": bench.manifest(),
            "dataset": b.dataset,
            "split": b.split,
        }
        have_heldout = have_heldout or b.role == "heldout"
    if not have_heldout:
        raise UserError(f"no heldout LeetCode benchmark is available: {_data_advice(plan)}")

    sft_info: dict[str, Any] = {"enabled": False}
    train_rows: list[Any] = []
    pool_rows: list[Any] = []
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    if plan.sft.dataset:
        if _missing_data(plan.sft.dataset):
            raise UserError(
                f"the SFT data {plan.sft.dataset} does not exist: pass --dataset PATH_OR_HUB_ID, or {_data_advice(plan)}"
            )
        from letitcode.training.data import Decontaminator, build_sft_data, split_by_problem

        _log(f"prepare: SFT data {plan.sft.dataset}")
        style = _chat_style(plan.model)
        everything = build_sft_data(
            plan.sft.dataset, revision=plan.sft.revision, val_fraction=0.0, style=style
        )  # type: ignore[arg-type]
        deco = Decontaminator(p for ps in problems_by_bench.values() for p in ps)
        removed: dict[str, int] = {}
        kept = []
        for r in everything.train:
            why = deco.reason(r.problem)
            if why:
                removed[why] = removed.get(why, 0) + 1
            else:
                kept.append(r)
        pool_rows = kept
        pool_path = data_dir / "sft_pool.jsonl"
        from letitcode.training.data import write_rows

        write_rows(kept, pool_path)
        train_rows, val_rows = split_by_problem(kept, plan.sft.val_fraction, plan.sft.split_seed)
        if plan.sft.max_train_samples is not None:
            train_rows = train_rows[: plan.sft.max_train_samples]
        if plan.sft.max_eval_samples is not None:
            val_rows = val_rows[: plan.sft.max_eval_samples]
        sft_info = {
            "enabled": True,
            "dataset": plan.sft.dataset,
            "source": everything.raw.manifest(),
            "layout": everything.preset,
            "style": style,
            "rows": len(everything.train),
            "removed_by_decontamination": sum(removed.values()),
            "removed_by": removed,
            "decontaminated_against": {k: len(v) for k, v in problems_by_bench.items()},
            "pool": str(pool_path),
            "pool_rows": len(kept),
            "train_rows": len(train_rows),
            "validation_rows": len(val_rows),
        }
        if everything.has_tests:
            # the overfitting probes: problems the fine-tuned models were trained on, and held-out ones
            for label, rows in ((SFT_TRAIN, train_rows), (SFT_VALIDATION, val_rows)):
                usable = _parseable_lcd_rows([r.raw for r in rows], f"{label} rows")
                if not usable:
                    skipped[label] = "no SFT rows of this side map to executable problems"
                    continue
                path = data_dir / f"{label}.jsonl"
                from letitcode.records import write_jsonl

                write_jsonl(path, usable)
                spec = BenchmarkSpec(
                    name=label,
                    benchmark="leetcodedataset",
                    dataset=str(path),
                    split=None,
                    limit=plan.overfitting.limit,
                    role="extra",
                    exemplar_dataset="{sft_pool}",
                )
                bench = _load_bench(spec)
                chosen = select_problems(bench.problems, EvalConfig(limit=spec.limit, seed=plan.seed))
                problems_by_bench[label] = chosen
                benches[label] = {
                    "spec": dataclasses.asdict(spec),
                    "task_ids": [p.task_id for p in chosen],
                    "manifest": bench.manifest(),
                    "dataset": str(path),
                    "split": None,
                }
        else:
            for label in (SFT_TRAIN, SFT_VALIDATION):
                skipped[label] = (
                    f"the SFT data ({everything.preset or 'column_map'} layout) has no tests, so pass@1 on trained-on "
                    "problems cannot be measured; overfitting evidence comes from the losses alone"
                )
    else:
        for label in (SFT_TRAIN, SFT_VALIDATION):
            skipped[label] = "the plan has no SFT data"

    _log("prepare: contamination (13-gram overlap with the SFT data, temporal split)")
    pool_grams: set[str] = set()
    for r in pool_rows:
        pool_grams |= word_ngrams(_sft_text(r))
    train_grams: set[str] = set()
    for r in train_rows:
        train_grams |= word_ngrams(_sft_text(r))
    contamination = {}
    for name, problems in problems_by_bench.items():
        pool = ngram_overlap(problems, pool_grams) if pool_rows else None
        trained = ngram_overlap(problems, train_grams) if train_rows else None
        contamination[name] = {
            "ngram": NGRAM,
            "sft_pool": pool,
            "sft_trained": trained,
            "temporal": temporal_status(problems, plan.sft.cutoff_date),
        }
    prep = {
        "plan": plan.name,
        "fingerprint": fp,
        "benchmarks": benches,
        "order": [b for b in [*(x.name for x in plan.benchmarks), SFT_TRAIN, SFT_VALIDATION] if b in benches],
        "skipped": skipped,
        "sft": sft_info,
        "contamination": contamination,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(cached, prep)
    _mark_done(data_dir, fp)
    _log(
        f"prepare: done in {_fmt_s(prep['seconds'])}; benchmarks: "
        + ", ".join(f"{k} ({len(v['task_ids'])})" for k, v in benches.items())
        + (f"; skipped: {', '.join(skipped)}" if skipped else "")
    )
    return prep


def primary_benchmark(prep: Mapping[str, Any]) -> str:
    """The first heldout benchmark that was evaluated: the one every approach is ranked on."""
    for name in prep["order"]:
        if prep["benchmarks"][name]["spec"]["role"] == "heldout":
            return name
    raise UserError("no heldout benchmark was prepared")


# ------------------------------------------------------------------------------------------------ units


def train_dir(out: Path, arm: ArmSpec, model: str | None = None) -> Path:
    """OUTPUT_DIR/train/<model>-<arm>: the folder name is the fine-tuned model's name in result datasets."""
    from letitcode.data.problem import slugify

    base = slugify(Path((model or "model").split("@")[0].rstrip("/")).name) or "model"
    return out / "train" / f"{base}-{arm.name}"


def _cli_args(args: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for k, v in args.items():
        if v is None:
            continue
        out.append(f"--{k}")
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, list | tuple):
            out += [str(x) for x in v]
        else:
            out.append(str(v))
    return out


def train_command(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, out: Path) -> list[str]:
    assert arm.train is not None
    sft = plan.sft
    args: dict[str, Any] = {
        "model": plan.model,
        "method": arm.train.method,
        "dataset": prep["sft"]["pool"],
        "output_dir": str(train_dir(out, arm, plan.model)),
        "val_fraction": sft.val_fraction,
        "split_seed": sft.split_seed,
        "max_train_samples": sft.max_train_samples,
        "max_eval_samples": sft.max_eval_samples,
        "max_steps": sft.max_steps,
        # the pool is already decontaminated against every evaluated problem of every benchmark
        "decontaminate": False,
        "prompt_style": prep["sft"]["style"],
        "merge": True if sft.merge and arm.train.method != "full" else None,
        # the plan is the whole configuration (no sft/recipes/ file mixed in); an arm whose configuration
        # changed retrains from scratch, the same one resumes (sft/train.py compares fingerprints)
        "recipe": "none",
        "overwrite": True,
        **sft.args,
        **arm.train.args,
    }
    accel = arm.train.accelerate_config or sft.accelerate_config
    launcher = (
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accel]
        if accel
        else [sys.executable]
    )
    return [*launcher, str(TRAIN_SCRIPT), *_cli_args(args)]


def _train_fp(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, out: Path) -> str:
    cmd = train_command(plan, prep, arm, out)[1:]
    # paths under OUTPUT_DIR are left out, so a moved study folder still resumes
    return fingerprint({"cmd": [c.replace(str(out), "") for c in cmd], "prep": prep["fingerprint"]})


def merged(plan: StudyPlan, arm: ArmSpec) -> bool:
    return bool(arm.train and plan.sft.merge and arm.train.method != "full")


def merged_dir(out: Path, arm: ArmSpec, model: str) -> Path:
    """OUTPUT_DIR/train/<model>-<arm>-merged: a link to sft/train.py's `merged/` folder, so the merged model
    carries the arm's name in result datasets (a model is named by its folder)."""
    t = train_dir(out, arm, model)
    return t.parent / f"{t.name}-merged"


def _eval_model(plan: StudyPlan, arm: ArmSpec, out: Path) -> str:
    if not arm.train:
        return plan.model
    return str(merged_dir(out, arm, plan.model) if merged(plan, arm) else train_dir(out, arm, plan.model))


def eval_config(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, bench: str, out: Path) -> Any:
    from letitcode.config import EvalConfig

    info = prep["benchmarks"][bench]
    spec = BenchmarkSpec(**info["spec"])
    exemplars = resolve_exemplars(spec.exemplar_dataset, prep)
    return EvalConfig(
        model=_eval_model(plan, arm, out),
        benchmark=spec.benchmark,
        dataset=spec.dataset,
        split=spec.split,
        revision=spec.revision,
        task_ids=list(info["task_ids"]),
        max_new_tokens=arm.max_new_tokens or plan.max_new_tokens,
        seed=plan.seed,
        strategy=arm.strategy,
        k_shots=arm.k_shots or plan.k_shots,
        retriever=arm.retriever or plan.retriever,
        exemplar_dataset=exemplars,
        backend=plan.backend,
        endpoint=plan.endpoint,
        batch_size=plan.batch_size,
        dtype=plan.dtype,
        device=plan.device,
        attn_implementation=plan.attn_implementation,
        quantization=plan.quantization,
        serve=plan.serve,
        serve_ready_timeout_s=plan.serve_ready_timeout_s,
        timeout_s=spec.timeout_s,
        workers=plan.workers,
        output_dir=str(run_dir(out, arm.name, bench)),
        approach=arm.name,
        progress=True,
        extra_manifest={
            "study": {"plan": plan.name, "arm": arm.name, "benchmark_label": bench, "kind": arm.kind}
        },
    )


def resolve_exemplars(spec: str | list[str] | None, prep: Mapping[str, Any]) -> str | None:
    """The few-shot/RAG exemplar source: the first alternative whose data exists. `{sft_pool}` is the
    decontaminated SFT data (read as LeetCodeDataset rows); `NAME:PATH` as in `letitcode.retrieval`."""
    if spec is None:
        return None
    alternatives = spec if isinstance(spec, list) else [spec]
    for alt in alternatives:
        if "{sft_pool}" in alt:
            pool = (prep.get("sft") or {}).get("pool")
            if not pool:
                continue
            alt = alt.replace("{sft_pool}", pool)
            if ":" not in alt.split("/")[0]:
                # the pool keeps its source's rows: RayBernard/leetcode's Alpaca rows read as `raybernard`
                layout = (prep.get("sft") or {}).get("layout")
                alt = f"{'raybernard' if layout == 'alpaca' else 'leetcodedataset'}:{alt}"
        _, sep, rest = alt.partition(":")
        path = rest if sep else alt
        if _missing_data(path):
            continue
        return alt
    raise UserError(f"none of the exemplar sources {alternatives} is available (missing data or no SFT pool)")


def run_dir(out: Path, arm: str, bench: str) -> Path:
    return out / "runs" / arm / bench


def _eval_fp(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, bench: str, out: Path) -> str:
    cfg = dataclasses.asdict(eval_config(plan, prep, arm, bench, out))
    # the device is where a unit runs (the child sees its pinned GPU as cuda:0), not what it computes
    for k in ("output_dir", "progress", "model", "device"):
        cfg.pop(k)
    train_fp = _train_fp(plan, prep, arm, out) if arm.train else plan.model
    return fingerprint({"cfg": cfg, "model": train_fp, "backend_options": plan.backend_options})


class Timings:
    """Measured wall time of every unit, accumulated over resumed runs (timings.json)."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}

    def add(self, unit: str, seconds: float, **extra: Any) -> None:
        row = self.data.setdefault(unit, {"seconds": 0.0, "attempts": 0})
        row["seconds"] = round(row["seconds"] + seconds, 2)
        row["attempts"] += 1
        row.update(extra)
        write_json(self.path, self.data)


def unit_device(plan: StudyPlan) -> tuple[str, dict[str, str]]:
    """(the device a unit's process uses, the environment that pins it there). A plan's `cuda:N` (or `auto` on a
    GPU machine: the first visible GPU) becomes CUDA_VISIBLE_DEVICES=<that GPU> and, inside the unit, `cuda:0`:
    one unit, one GPU. `--device cuda` without CUDA fails here, before any unit starts."""
    from letitcode import devices

    device = devices.resolve_device(plan.device, flag="plan device")
    if not devices.is_cuda(device):
        return "cpu", {}
    return "cuda:0", {"CUDA_VISIBLE_DEVICES": devices.physical_gpu(device)}


def _run_child(
    cmd: list[str], log_path: Path, threads: int | None = None, env_extra: Mapping[str, str] | None = None
) -> tuple[int, float, float]:
    """Run a subprocess (output to our stdout and to `log_path`); returns (status, seconds, peak RSS MB).

    `os.wait4` gives the rusage of exactly this child, so every unit's peak memory is its own."""
    t0 = time.perf_counter()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads:
        env.setdefault("OMP_NUM_THREADS", str(threads))
        env.setdefault("MKL_NUM_THREADS", str(threads))
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            logf.write(line)
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024


def _tail(path: Path, n: int = 5) -> str:
    lines = (
        [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
    )
    return " | ".join(lines[-n:])


def run_training(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, out: Path, timings: Timings) -> None:
    folder = train_dir(out, arm, plan.model)
    fp = _train_fp(plan, prep, arm, out)
    if _done(folder, fp):
        _log(f"train {arm.name}: already done, skipped")
        return
    cmd = train_command(plan, prep, arm, out)
    _log(f"train {arm.name}: {' '.join(cmd[1:])}")
    log = folder.parent / f"{folder.name}.log"
    multi_gpu = bool(arm.train and (arm.train.accelerate_config or plan.sft.accelerate_config))
    _, pin = unit_device(plan)
    rc, seconds, rss = _run_child(cmd, log, plan.cpu_threads, env_extra=None if multi_gpu else pin)
    timings.add(f"train/{arm.name}", seconds)
    if rc != 0:
        raise UserError(f"training arm {arm.name!r} failed (exit {rc}); log: {log}: {_tail(log)}")
    manifest = json.loads((folder / "manifest.json").read_text())
    counts = (manifest.get("data") or {}).get("counts") or {}
    want = (prep["sft"]["train_rows"], prep["sft"]["validation_rows"])
    got = (counts.get("train"), counts.get("validation"))
    if got != want:
        # the overfitting probes assume the study's split is sft/train.py's split
        raise UserError(
            f"arm {arm.name!r}: sft/train.py split the data {got} (train, validation) but the study expected {want}"
        )
    if merged(plan, arm):
        link = merged_dir(out, arm, plan.model)
        if not (folder / "merged" / "config.json").exists():
            raise UserError(f"arm {arm.name!r}: sft/train.py --merge wrote no {folder / 'merged'}")
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(folder.name) / "merged", target_is_directory=True)
    _mark_done(folder, fp, seconds=round(seconds, 2), peak_rss_gib=round(rss / 1024, 3))
    _log(f"train {arm.name}: done in {_fmt_s(seconds)} (peak RSS {rss / 1024:.2f} GiB)")


def pending_benchmarks(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, out: Path) -> list[str]:
    return [
        b for b in prep["order"] if not _done(run_dir(out, arm.name, b), _eval_fp(plan, prep, arm, b, out))
    ]


def eval_groups(plan: StudyPlan, out: Path) -> list[list[ArmSpec]]:
    """Arms grouped by the model they evaluate (the in-context arms share the base model), so each model is
    loaded once, in one subprocess; every fine-tuned arm is a group of its own."""
    groups: dict[str, list[ArmSpec]] = {}
    for arm in plan.arms:
        groups.setdefault(_eval_model(plan, arm, out), []).append(arm)
    return list(groups.values())


def run_arm_evals(
    plan: StudyPlan, prep: Mapping[str, Any], arms: Sequence[ArmSpec], out: Path, timings: Timings
) -> None:
    todo = {a.name: pending_benchmarks(plan, prep, a, out) for a in arms}
    names = [n for n, p in todo.items() if p]
    label = "+".join(a.name for a in arms)
    if not names:
        _log(f"evaluate {label}: every benchmark already done, skipped")
        return
    _log("evaluate " + "; ".join(f"{n}: {', '.join(todo[n])}" for n in names))
    device, pin = unit_device(plan)
    cmd = [
        sys.executable,
        "-m",
        "letitcode.study.runner",
        "eval-arms",
        "--output-dir",
        str(out),
        "--device",
        device,
    ]
    for n in names:
        cmd += ["--arm", n]
    log = out / "runs" / f"{label}.log"
    rc, seconds, _ = _run_child(cmd, log, plan.cpu_threads, env_extra=pin)
    timings.add(f"eval/{label}", seconds, runs=sum(len(todo[n]) for n in names))
    if rc != 0:
        raise UserError(f"evaluating {label} failed (exit {rc}); log: {log}: {_tail(log)}")
    _log(f"evaluate {label}: done in {_fmt_s(seconds)}")


def eval_arms_child(out: Path, arm_names: Sequence[str], device: str | None = None) -> None:
    """In a subprocess: evaluate arms that share one model on their pending benchmarks, loading the model
    once (or starting one server for it, with `serve`); record each arm's peak memory (the peak is reset
    between arms). `device` is the unit's own device (the parent pinned it to one GPU)."""
    plan = StudyPlan.from_dict(json.loads((out / "plan.json").read_text()))
    if device:
        plan.device = device
    prep = json.loads((out / "prepare.json").read_text())
    arms = [plan.arm(n) for n in arm_names]
    if len({_eval_model(plan, a, out) for a in arms}) != 1:
        raise UserError(f"eval-arms: {', '.join(arm_names)} do not share one model")
    from letitcode.backends import make_backend
    from letitcode.pipeline import run_eval

    backend = None
    served: Any = None  # (context, overrides) of the one server this model gets, with `serve`
    stack = contextlib.ExitStack()
    with stack:
        for arm in arms:
            pending = pending_benchmarks(plan, prep, arm, out)
            if pending:
                backend, served = _eval_arm(
                    plan, prep, arm, pending, out, backend, served, stack, make_backend, run_eval
                )


def _eval_arm(
    plan: StudyPlan,
    prep: Mapping[str, Any],
    arm: ArmSpec,
    pending: Sequence[str],
    out: Path,
    backend: Any,
    served: Any,
    stack: contextlib.ExitStack,
    make_backend: Any,
    run_eval: Any,
) -> tuple[Any, Any]:
    _reset_peak_memory()
    if plan.serve:
        if served is None:  # one server per model: every arm and benchmark of this unit goes through it
            from letitcode.server import serve_for_eval

            first = eval_config(plan, prep, arm, pending[0], out)
            first = dataclasses.replace(first, output_dir=str(out / "runs" / arm.name))
            served = stack.enter_context(serve_for_eval(first))
        backend = served[1]
    elif backend is None and plan.backend == "local":
        backend = make_backend(
            "local",
            _eval_model(plan, arm, out),
            batch_size=plan.batch_size,
            dtype=plan.dtype,
            device=plan.device,
            attn_implementation=plan.attn_implementation,
            quantization=plan.quantization,
            **plan.backend_options,
        )
    for bench in pending:
        cfg = eval_config(plan, prep, arm, bench, out)
        if served is not None:
            s_cfg = served[0]
            cfg = dataclasses.replace(
                cfg,
                backend="openai",
                endpoint=s_cfg.endpoint,
                model=s_cfg.model,
                serve=None,
                prompt_style=s_cfg.prompt_style,
                extra_manifest={
                    **cfg.extra_manifest,
                    "server": s_cfg.extra_manifest.get("server"),
                    "served_model": s_cfg.extra_manifest.get("served_model"),
                },
            )
        t0 = time.perf_counter()
        _log(
            f"{arm.name} / {bench}: {len(cfg.task_ids)} problems, {cfg.strategy}, max_new_tokens {cfg.max_new_tokens}"
        )
        results = run_eval(cfg, backend=backend)
        seconds = time.perf_counter() - t0
        _mark_done(Path(cfg.output_dir), _eval_fp(plan, prep, arm, bench, out), seconds=round(seconds, 2))
        _log(f"{arm.name} / {bench}: pass@1 {results.get('pass@1', 0):.3f} in {_fmt_s(seconds)}")
    mem = _peak_memory(plan.device)
    info = backend.describe() if backend is not None and hasattr(backend, "describe") else {}
    mem["quantization"] = info.get("quantization")
    if plan.serve:  # the weights live in the server process: this process's peak is not the model's
        mem.update(served_by=plan.serve, gpu_peak_gib=None)
    path = out / "runs" / arm.name / "memory.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    for k in ("peak_rss_gib", "gpu_peak_gib"):  # a resumed arm keeps the larger of its attempts' peaks
        if old.get(k) is not None and (mem.get(k) is None or old[k] > mem[k]):
            mem[k] = old[k]
    write_json(path, mem)
    return backend, served


def _reset_peak_memory() -> None:
    """Start a new peak: Linux resets VmHWM on `echo 5 > /proc/self/clear_refs`; CUDA has its own counter."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the peak is the process's so far (ru_maxrss), an upper bound
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory(device: str = "auto") -> dict[str, Any]:
    """Peak host RSS and, on a GPU, peak memory torch allocated on the unit's device, in GiB (2**30 bytes),
    with the device's name and total memory (torch.cuda.get_device_properties) to compare against."""
    import resource

    from letitcode import devices

    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss_kib = int(line.split()[1])
    except OSError:
        pass
    mem: dict[str, Any] = {"peak_rss_gib": round(rss_kib / 2**20, 3)}
    dev = devices.resolve_device(device)
    info = devices.device_info(dev)
    mem.update(
        device=info["name"] if devices.is_cuda(dev) else "cpu",
        device_index=dev,
        gpu_total_gib=info.get("total_memory_gib"),
        gpu_peak_gib=devices.peak_gpu_gib(dev),
    )
    return mem


# ------------------------------------------------------------------------------------------------ the study


def collect(plan: StudyPlan, prep: Mapping[str, Any], out: Path) -> Path:
    """Merge every run on a plan benchmark into OUTPUT_DIR/dataset (the overfitting probes stay out: they
    share a benchmark name with the heldout LeetCodeDataset runs and are diagnostics, not leaderboard rows)."""
    import shutil

    from letitcode.results.dataset import merge_into

    target = out / "dataset"
    if target.exists():
        shutil.rmtree(target)
    for arm in plan.arms:
        for bench in prep["order"]:
            if bench in (SFT_TRAIN, SFT_VALIDATION):
                continue
            merge_into(target, run_dir(out, arm.name, bench), title=f"LetItCode study: {plan.name}")
    return target


def run_study(plan: StudyPlan, out: str | Path, *, report: bool = True) -> Path:
    """Run (or resume) every unit of the plan, then write the report. Returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "plan.json", plan.to_dict())
    unit_device(plan)  # a plan device that is not there fails now, not after the preparation
    timings = Timings(out / "timings.json")
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    prep = prepare(plan, out)
    timings.add("prepare", time.perf_counter() - t0)
    ft = [a for a in plan.arms if a.train]
    units: list[tuple[str, list[ArmSpec]]] = [("train", [a]) for a in ft] + [
        ("evaluate", g) for g in eval_groups(plan, out)
    ]
    for i, (kind, arms) in enumerate(units, 1):
        elapsed = time.perf_counter() - t_start
        _log(f"unit {i}/{len(units)}: {kind} {'+'.join(a.name for a in arms)} (elapsed {_fmt_s(elapsed)})")
        if kind == "train":
            run_training(plan, prep, arms[0], out, timings)
        else:
            run_arm_evals(plan, prep, arms, out, timings)
    _log("collecting runs into one result dataset")
    collect(plan, prep, out)
    total = time.perf_counter() - t_start
    timings.data["_last_run_wall_s"] = round(total, 2)
    write_json(timings.path, timings.data)
    _log(f"all units done in {_fmt_s(total)} this run")
    if not report:
        return out
    from letitcode.study.report import write_report

    path = write_report(out)
    _log(f"report: {path}")
    return path


# ------------------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=None,  # the script name, or `letitcode study` from the console command
        description="Run the LetItCode study (ICL, SFT, RAG; every approach on the same problems) and write its report.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--preset", default=None, help="a plan in experiments/plans/ (micro, embedded-cpu, gemma-7b, ...)"
    )
    which.add_argument("--plan", default=None, help="a plan YAML file")
    p.add_argument(
        "--output-dir", "--output_dir", required=True, help="where runs, the result dataset and report.md go"
    )
    p.add_argument(
        "--model", default=None, help="override the plan's model: embedded, ORG/NAME[@REV] or a local folder"
    )
    p.add_argument(
        "--dataset", default=None, help="override the plan's SFT data: a local file or Hub id[@REV]"
    )
    p.add_argument(
        "--data-dir",
        "--data_dir",
        default=None,
        help="what {data} in the plan means (default: $LETITCODE_DATA or ../shared/data)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="only (re)write report.md from the finished runs"
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.output_dir)
    if args.report_only:
        from letitcode.study.report import write_report

        print(f"wrote {write_report(out)}")
        return 0
    plan = load_plan(
        args.plan or args.preset or "embedded-cpu",
        data_dir=args.data_dir,
        model=args.model,
        sft_dataset=args.dataset,
    )
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    _log(
        f"plan {plan.name} ({plan.source}): model {plan.model}, {len(plan.arms)} arms, "
        f"{len(plan.benchmarks)} benchmarks -> {out}"
    )
    if plan.estimate:
        _log(f"expected duration: {plan.estimate.strip().splitlines()[0]}")
    path = run_study(plan, out)
    print(f"wrote {path}")
    return 0


def _child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m letitcode.study.runner eval-arms")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--arm", action="append", required=True)
    p.add_argument(
        "--device", default=None, help="this unit's device (the parent pinned CUDA_VISIBLE_DEVICES)"
    )
    a = p.parse_args(argv)
    eval_arms_child(Path(a.output_dir), a.arm, a.device)
    return 0


if __name__ == "__main__":
    from letitcode.cli import run_main

    if len(sys.argv) > 1 and sys.argv[1] == "eval-arms":
        run_main(lambda: _child_main(sys.argv[2:]))
    else:
        run_main(main)
