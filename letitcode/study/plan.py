"""The study plan: what a plan YAML may say (`StudyPlan` and its parts), loading it and checking it.

A plan (a preset in `letitcode/templates/plans/<preset>.yaml`, or any YAML file) names the model, the
benchmarks, the SFT data, the arms (in-context strategies and fine-tuning methods) and which arms each research
question compares. This is the lowest module of `letitcode.study`: the names every other module shares (the
benchmark labels the study derives, the roles, the training methods) live here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode import templates
from letitcode.data.benchmarks import BENCHMARKS
from letitcode.errors import UserError
from letitcode.hub.spec import looks_like_hub_id
from letitcode.training.config import METHODS

REPO = Path(__file__).resolve().parents[2]
# the preset plans ship as package data (experiments/plans links here for a checkout's users and docs)
PLANS_DIR = templates.PLANS
ROLES = ("heldout", "extra")  # heldout: a LeetCode benchmark every approach is compared on
SFT_TRAIN = "sft_train_subset"  # benchmark labels the study derives from the SFT split (overfitting evidence)
SFT_VALIDATION = "sft_validation"
TRAIN_METHODS = METHODS  # training.config imports no TRL, so the plan checks against the one list


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


def preset_names() -> list[str]:
    """The preset plans shipped with letitcode (`--preset NAME`)."""
    return sorted(q.name[: -len(".yaml")] for q in PLANS_DIR.iterdir() if q.name.endswith(".yaml"))


def plan_file(preset_or_path: str) -> Path:
    """A preset name (`micro`) or a path to a plan YAML."""
    p = Path(preset_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise UserError(f"plan file {preset_or_path!r} does not exist")
        return p
    path = PLANS_DIR / f"{preset_or_path}.yaml"
    if not path.is_file():
        raise UserError(
            f"unknown preset {preset_or_path!r}; presets: {', '.join(preset_names())} (or pass --plan FILE)"
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
    raw.setdefault("name", Path(path.name).stem)
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
    """Check what the dataclasses cannot: names, roles, methods and the arms each comparison names."""
    where = plan.source or plan.name
    _validate_benchmarks(plan, where)
    _validate_arms(plan, where)
    _validate_comparisons(plan, where)
    if any(a.train for a in plan.arms) and not plan.sft.dataset:
        raise UserError(
            f"{where}: fine-tuning arms need SFT data: pass --dataset PATH_OR_HUB_ID "
            "(e.g. ../shared/data/leetcodedataset/LeetCodeDataset-v0.2.0-train.jsonl.gz)"
        )
    if plan.deployment.price_per_hour_usd < 0:
        raise UserError(f"{where}: deployment.price_per_hour_usd must be >= 0")


def _validate_benchmarks(plan: StudyPlan, where: str) -> None:

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


def _validate_arms(plan: StudyPlan, where: str) -> None:
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


def _validate_comparisons(plan: StudyPlan, where: str) -> None:
    arm_names = [a.name for a in plan.arms]
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


# ------------------------------------------------------------------------------------------------ helpers


def _is_local_spec(spec: str) -> bool:

    return not looks_like_hub_id(spec)


def missing_data(spec: str | None) -> bool:
    return bool(spec) and _is_local_spec(spec) and not Path(spec).expanduser().exists()  # type: ignore[arg-type]


def data_advice(plan: StudyPlan) -> str:
    return (
        f"pass --data-dir DIR (a folder holding leetcodedataset/ and mbpp/, e.g. the shared data next to the "
        f"checkout; now {default_data_dir()}) or edit the path in {plan.source or 'the plan'}"
    )
