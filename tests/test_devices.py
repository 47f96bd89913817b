"""The GPU path's decisions (device, dtype, attention, KV budget, 4-bit base, pinning), tested on a CPU.

No GPU exists here, so CUDA is patched in (torch.cuda.is_available, get_device_capability, mem_get_info, ...)
to test what each caller decides; the CPU paths run for real on a tiny from-config Llama."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO

from letitcode import devices
from letitcode.errors import UserError


@pytest.fixture()
def fake_cuda(monkeypatch):
    """A machine with `count` GPUs of compute capability `cap` and `free` bytes free (nothing runs on them)."""

    def install(
        count: int = 1, cap: tuple[int, int] = (9, 0), free: int = 40 * 2**30, total: int = 80 * 2**30
    ):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: cap)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (free, total))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100 80GB HBM3")
        monkeypatch.setattr(
            torch.cuda, "get_device_properties", lambda i=0: SimpleNamespace(total_memory=total)
        )
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda i=0: 3 * 2**30)
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda i=None: None)

    return install


# ------------------------------------------------------------------------------------------------ decisions


def test_device_auto_is_cuda_when_available_and_cpu_otherwise(monkeypatch, fake_cuda):
    from letitcode.config import EvalConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == "cpu"
    assert EvalConfig().device == "auto" and EvalConfig(device="auto").resolved_device() == "cpu"
    fake_cuda(count=2)
    assert EvalConfig(device="auto").resolved_device() == "cuda:0"
    assert devices.resolve_device("cuda") == "cuda:0" and devices.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(UserError, match=r"cuda:2: only 2 CUDA device"):
        devices.resolve_device("cuda:2")
    with pytest.raises(UserError, match="not a device"):
        devices.resolve_device("gpu")


def test_device_cuda_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError) as e:
        devices.resolve_device("cuda")
    msg = str(e.value)
    assert "--device cuda" in msg and "no CUDA device" in msg and "--device cpu" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("cap", "want"), [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float16"), ((7, 0), "float16")]
)
def test_dtype_auto_is_bf16_on_ampere_and_later_fp16_on_t4_v100(fake_cuda, cap, want):
    fake_cuda(cap=cap)
    assert devices.resolve_dtype("auto", "cuda:0") == want
    assert devices.resolve_dtype("auto", "cpu") == "float32"
    assert devices.resolve_dtype("bfloat16", "cpu") == "bfloat16"
    with pytest.raises(UserError, match="--dtype 'fp8'"):
        devices.resolve_dtype("fp8", "cpu")


def test_attn_auto_is_flash_attention_2_only_on_cuda_with_flash_attn(monkeypatch):
    monkeypatch.setattr(devices, "flash_attn_installed", lambda: True)
    assert devices.resolve_attn("auto", "cuda:0") == "flash_attention_2"
    assert devices.resolve_attn("auto", "cpu") == "sdpa"
    with pytest.raises(UserError, match="needs a CUDA device"):
        devices.resolve_attn("flash_attention_2", "cpu")
    monkeypatch.setattr(devices, "flash_attn_installed", lambda: False)
    assert devices.resolve_attn("auto", "cuda:0") == "sdpa"
    with pytest.raises(UserError, match="pip install flash-attn"):
        devices.resolve_attn("flash_attention_2", "cuda:0")
    assert devices.resolve_attn("eager", "cuda:0") == "eager"


def test_kv_budget_from_free_memory_and_kv_bytes_per_token(fake_cuda):
    from transformers import LlamaConfig

    # Llama-3.1-8B: 32 layers, 8 KV heads of 128 -> 2 * 32 * 8 * 128 * 2 bytes = 128 KiB per token in bf16
    cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8)
    assert devices.kv_bytes_per_token(cfg, torch.bfloat16) == 131072
    fake_cuda(free=40 * 2**30)
    assert (
        devices.cuda_token_budget(cfg, torch.bfloat16, "cuda:0") == int(40 * 2**30 * 0.8) // 131072
    )  # 262,144


def test_physical_gpu_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert devices.physical_gpu("cuda:1") == "6" and devices.physical_gpu("cuda:0") == "4"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.physical_gpu("cuda:3") == "3"


# ------------------------------------------------------------------------------------------------ models.load


def test_load_puts_the_model_on_the_requested_device_cpu(tiny_model):
    from letitcode import models

    model, _, _ = models.load(str(tiny_model), device="cpu")
    assert model.device.type == "cpu" and model.dtype == torch.float32
    assert model.letitcode_load == {
        "device": "cpu",
        "dtype": "float32",
        "attn_implementation": "sdpa",
        "quantization": "none",
        "trained_quantization": None,
    }
    model, _, _ = models.load(str(tiny_model), device="cpu", dtype="bfloat16", attn_implementation="eager")
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == "eager"


def test_load_on_cuda_loads_onto_that_one_device_never_device_map_auto(monkeypatch, fake_cuda, tiny_model):
    from transformers import AutoModelForCausalLM

    from letitcode import models

    fake_cuda(count=2, cap=(7, 0))  # a V100: float16
    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        return real(path, **{k: v for k, v in kwargs.items() if k != "device_map"})

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    model, _, _ = models.load(str(tiny_model), device="cuda:1")
    assert (
        seen["device_map"] == {"": "cuda:1"}
        and seen["dtype"] == torch.float16
        and seen["attn_implementation"] == "sdpa"
    )
    assert model.letitcode_load["device"] == "cuda:1" and model.letitcode_load["dtype"] == "float16"
    models.load(str(tiny_model))  # auto: CUDA when available
    assert seen["device_map"] == {"": "cuda:0"}


# ------------------------------------------------------------------------------------------------ QLoRA


@pytest.fixture(scope="module")
def qlora_adapter(tiny_model, tmp_path_factory):
    """A LoRA adapter with the training manifest sft/train.py writes for --method qlora."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("qlora") / "tiny-qlora"
    get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=4, target_modules=["q_proj"])
    ).save_pretrained(out)
    quant = {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": "float32",
    }
    (out / "manifest.json").write_text(
        json.dumps({"kind": "sft", "method": "qlora", "hyperparameters": {"quantization": quant}})
    )
    return out


def test_qlora_adapter_without_bnb_cuda_is_one_line_naming_adapter_and_what_to_pass(qlora_adapter):
    from letitcode import models

    with pytest.raises(UserError) as e:
        models.load(str(qlora_adapter), device="cpu")
    msg = str(e.value)
    assert str(qlora_adapter) in msg and "QLoRA" in msg and "--quantization none" in msg and "\n" not in msg
    model, _, _ = models.load(str(qlora_adapter), device="cpu", quantization="none")
    assert model.letitcode_load["quantization"] == "none"
    assert (
        model.letitcode_load["trained_quantization"]["bnb_4bit_quant_type"] == "nf4"
    )  # the manifest says it differs


def test_qlora_adapter_on_cuda_loads_its_base_in_4bit(monkeypatch, fake_cuda, qlora_adapter, tiny_model):
    from transformers import AutoModelForCausalLM

    from letitcode import models

    fake_cuda()
    monkeypatch.setattr(devices, "bnb_cuda_available", lambda: True)
    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        return real(
            path, dtype=kwargs["dtype"]
        )  # the real 4-bit load needs the GPU; the decision is what is tested

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    import peft  # with CUDA patched in, PEFT would pin memory for the adapter weights: not what is tested here

    monkeypatch.setattr(peft.PeftModel, "from_pretrained", staticmethod(lambda base, path, **k: base))
    model, _, _ = models.load(str(qlora_adapter))
    q = seen["quantization_config"]
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.float32 and seen["device_map"] == {"": "cuda:0"}
    assert model.letitcode_load["quantization"] == "4bit-nf4"
    # a plain model is never quantized by auto
    seen.clear()
    models.load(str(tiny_model))
    assert "quantization_config" not in seen


# ------------------------------------------------------------------------------------------------ local backend


def test_cuda_model_takes_the_paged_path_with_a_gpu_sized_kv_cache(monkeypatch, fake_cuda, tiny_model):
    """On CUDA the paged path is picked, its KV cache is the free-memory budget (not batch x longest) and a step
    is not held to the CPU's 1024 tokens; the batch shrinks only when the budget cannot hold it."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from letitcode.backends.base import DecodingParams, GenRequest
    from letitcode.backends.local import MAX_BATCH_TOKENS, LocalBackend

    model = LlamaForCausalLM.from_pretrained(tiny_model)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    fake_cuda(free=2**30)
    monkeypatch.setattr(LlamaForCausalLM, "device", property(lambda self: torch.device("cuda", 0)))
    b = LocalBackend(str(tiny_model), loaded=(model, tok), batch_size=32)
    assert b.mode == "paged" and b.device == "cuda:0"
    captured = {}

    class Stop(Exception):
        pass

    def init_cb(*, generation_config, continuous_batching_config):
        captured["cb"] = continuous_batching_config
        raise Stop

    monkeypatch.setattr(model, "init_continuous_batching", init_cb)
    with pytest.raises(Stop):
        list(b.generate([GenRequest("def f():\n", "k0")], DecodingParams(max_new_tokens=100)))
    cb = captured["cb"]
    per_token = devices.kv_bytes_per_token(model.config, model.dtype)  # 2 * 2 * 2 * 16 * 4 = 512 bytes
    budget = int(2**30 * 0.8) // per_token
    assert b.token_budget == budget and cb.num_blocks == budget // cb.page_size
    assert cb.max_batch_tokens > MAX_BATCH_TOKENS and cb.max_requests_per_batch == 32
    assert b.describe()["device_info"]["name"] == "NVIDIA H100 80GB HBM3"
    # a budget that holds only 3 sequences of the longest request: 3 in flight, not 32
    monkeypatch.setattr(devices, "cuda_token_budget", lambda *a: 3 * 1000 + 5)
    assert b.rows_in_flight(1000) == 3
    monkeypatch.setattr(devices, "cuda_token_budget", lambda *a: 500)
    with pytest.raises(UserError, match="lower --max_new_tokens"):
        b.rows_in_flight(1000)


def test_cpu_keeps_batch_size_and_the_cpu_step_cap(tiny_model):
    from letitcode.backends.local import LocalBackend

    b = LocalBackend(str(tiny_model), batch_size=5, device="cpu")
    assert not b.on_cuda and b.rows_in_flight(10**9) == 5 and b.mode == "continuous"
    d = b.describe()
    assert d["device"] == "cpu" and d["dtype"] == "float32" and d["attn_implementation"] == "sdpa"
    # generations on a 4-bit base are never reused for the full-precision base (or back)
    assert b.cache_key == b.resolved.cache_key
    b.load_info["quantization"] = "4bit-nf4"
    assert b.cache_key != b.resolved.cache_key


# ------------------------------------------------------------------------------------------------ run_eval


def test_run_eval_with_device_cuda_and_no_gpu_fails_before_loading(monkeypatch, tmp_path):
    from letitcode import models
    from letitcode.config import EvalConfig
    from letitcode.data import benchmarks as sources
    from letitcode.pipeline import run_eval

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def boom(*a, **k):
        raise AssertionError("loaded something before checking the device")

    monkeypatch.setattr(models, "load", boom)
    monkeypatch.setattr(sources, "load_benchmark", boom)
    with pytest.raises(UserError, match="--device cuda: no CUDA device"):
        run_eval(EvalConfig(device="cuda", output_dir=str(tmp_path)))


def test_evaluate_cli_device_cuda_without_gpu_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate/run.py",
            "--model",
            "embedded",
            "--device",
            "cuda",
            "--limit",
            "1",
            "--output_dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: no CUDA device"), proc.stderr
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.slow
def test_run_eval_records_device_dtype_attn_and_gpu_peak_in_manifest(tiny_model, tmp_path):
    from letitcode.config import EvalConfig
    from letitcode.pipeline import run_eval

    run_eval(
        EvalConfig(
            model=str(tiny_model),
            benchmark="humaneval",
            limit=1,
            max_new_tokens=4,
            device="cpu",
            output_dir=str(tmp_path),
            progress=False,
        )
    )
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["device"] == {"device": "cpu", "name": "cpu", "peak_gpu_memory_gib": None}
    assert m["backend"]["device"] == "cpu" and m["backend"]["dtype"] == "float32"
    assert m["backend"]["attn_implementation"] == "sdpa" and m["backend"]["quantization"] == "none"


# ------------------------------------------------------------------------------------------------ the study


def _humaneval_prep() -> dict:
    """A study's prepare.json for one HumanEval problem, no SFT data."""
    import dataclasses

    from letitcode.study.plan import BenchmarkSpec

    spec = dataclasses.asdict(BenchmarkSpec(name="humaneval", benchmark="humaneval"))
    return {"benchmarks": {"humaneval": {"spec": spec, "task_ids": ["HumanEval/0"]}}, "sft": {}}


def _tiny_plan(**kw):
    from letitcode.study.plan import ArmSpec, BenchmarkSpec, StudyPlan, TrainSpec

    return StudyPlan(
        name="t",
        benchmarks=[BenchmarkSpec(name="humaneval", benchmark="humaneval", role="heldout")],
        arms=[
            ArmSpec(name="zero_shot"),
            ArmSpec(name="lora", train=TrainSpec(method="lora")),
            ArmSpec(
                name="full",
                train=TrainSpec(method="full", accelerate_config="accelerate_configs/multi_gpu.yaml"),
            ),
        ],
        **kw,
    )


def test_study_pins_every_unit_to_one_gpu_and_passes_its_device(monkeypatch, fake_cuda, tmp_path):
    from letitcode.study import units as study

    fake_cuda(count=4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    calls = []
    monkeypatch.setattr(
        study,
        "_run_child",
        lambda cmd, log, threads=None, env_extra=None: calls.append((cmd, env_extra)) or (1, 0.0, 0.0),
    )
    monkeypatch.setattr(study, "pending_benchmarks", lambda *a: ["humaneval"])
    monkeypatch.setattr(study, "train_command", lambda *a: ["python", "sft/train.py"])
    monkeypatch.setattr(study, "_train_fp", lambda *a: "fp")
    plan = _tiny_plan(device="cuda:2")
    timings = study.Timings(tmp_path / "timings.json")
    for unit in (
        lambda: study.run_arm_evals(plan, {}, [plan.arm("zero_shot")], tmp_path, timings),
        lambda: study.run_training(plan, {}, plan.arm("lora"), tmp_path, timings),
        lambda: study.run_training(plan, {}, plan.arm("full"), tmp_path, timings),
    ):
        with pytest.raises(UserError, match="failed"):
            unit()
    (eval_cmd, eval_env), (_, lora_env), (_, full_env) = calls
    assert eval_cmd[eval_cmd.index("--device") + 1] == "cuda:0" and eval_env == {"CUDA_VISIBLE_DEVICES": "2"}
    assert lora_env == {"CUDA_VISIBLE_DEVICES": "2"}
    assert full_env is None  # a multi-GPU (accelerate) arm sees every GPU, one per rank
    # auto on a GPU machine: the first GPU; on a CPU machine: nothing pinned; cuda without CUDA: one line
    assert study.unit_device(_tiny_plan()) == ("cuda:0", {"CUDA_VISIBLE_DEVICES": "0"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert study.unit_device(_tiny_plan()) == ("cpu", {})
    with pytest.raises(UserError, match="plan device cuda: no CUDA device"):
        study.unit_device(_tiny_plan(device="cuda"))


def test_study_eval_unit_loads_on_its_device_and_records_gib(monkeypatch, fake_cuda, tmp_path):
    import contextlib

    from letitcode.study import units as study

    fake_cuda()
    plan = _tiny_plan(device="cuda:0", attn_implementation="sdpa", quantization="none", batch_size=16)
    prep = _humaneval_prep()
    seen = {}

    class Backend:
        device = "cuda:0"

        def describe(self):
            return {"quantization": "4bit-nf4"}

    def make_backend(kind, model, **kw):
        seen.update(kw, kind=kind)
        return Backend()

    def run_eval(cfg, backend=None):
        seen["cfg"] = cfg
        return {"pass@1": 0.0}

    with contextlib.ExitStack() as stack:
        study._eval_arm(
            plan,
            prep,
            plan.arm("zero_shot"),
            ["humaneval"],
            tmp_path,
            None,
            None,
            stack,
            make_backend,
            run_eval,
        )
    assert (
        seen["device"] == "cuda:0"
        and seen["attn_implementation"] == "sdpa"
        and seen["quantization"] == "none"
    )
    assert seen["cfg"].device == "cuda:0" and seen["batch_size"] == 16
    mem = json.loads((tmp_path / "runs" / "zero_shot" / "memory.json").read_text())
    assert (
        mem["gpu_peak_gib"] == 3.0
        and mem["gpu_total_gib"] == 80.0
        and mem["device"] == "NVIDIA H100 80GB HBM3"
    )
    assert mem["quantization"] == "4bit-nf4" and "peak_rss_gib" in mem


def test_report_memory_in_gib_prefers_gpu_peak_and_reads_the_training_manifest():
    from letitcode.study.report.numbers import eval_memory, training_memory

    assert eval_memory({"gpu_peak_gib": 5.5, "peak_rss_gib": 2.0}) == (5.5, "GPU peak allocated")
    assert eval_memory({"peak_rss_mb": 2048.0, "gpu_peak_mb": None}) == (
        2.0,
        "process peak RSS (no GPU)",
    )  # older runs
    assert eval_memory({"gpu_peak_mb": 1024.0}) == (1.0, "GPU peak allocated")
    # training: the largest rank's GPU peak wherever sft/train.py puts it, else the process RSS
    assert training_memory({"gpu_memory": {"peak_gib_per_rank": [10.5, 12.0]}}, {"peak_rss_gib": 3.0}) == (
        12.0,
        "GPU peak",
    )
    assert training_memory({"gpu_peak_memory_mb": [2048, 1024]}, {}) == (2.0, "GPU peak")
    assert training_memory({"hardware": {"gpu_memory_gb": 79.2}}, {"peak_rss_mb": 1536.0}) == (
        1.5,
        "peak RSS",
    )


def test_recommendation_breaks_cost_ties_by_memory_so_4bit_qlora_can_win(monkeypatch):
    from letitcode.study.report import deployment as study_report

    rows = [
        {
            "arm": "lora",
            "pass@1": 0.5,
            "cost_per_1k": 1.00,
            "p95": 1.0,
            "tokens_per_solved": 100,
            "memory_gib": 17.2,
        },
        {
            "arm": "qlora",
            "pass@1": 0.5,
            "cost_per_1k": 1.05,
            "p95": 1.2,
            "tokens_per_solved": 100,
            "memory_gib": 6.1,
        },
    ]
    monkeypatch.setattr(study_report, "paired", lambda *a: {"verdict": "no significant difference"})
    rec = study_report.recommend(SimpleNamespace(primary="b"), rows)
    assert rec["choice"]["arm"] == "qlora"


def test_eval_after_evaluates_on_the_gpu_and_a_qlora_adapter_on_its_4bit_base(
    monkeypatch, tmp_path, qlora_adapter
):
    from letitcode import pipeline
    from letitcode.training import eval_after as training

    seen = []
    monkeypatch.setattr(
        pipeline, "run_eval", lambda cfg: seen.append(cfg) or {"pass@1": 0.0, "n_problems": 1}
    )
    data = SimpleNamespace(style="chat", has_tests=False, train=None, validation=None)
    args = SimpleNamespace(
        eval_limit=2,
        eval_max_new_tokens=8,
        eval_benchmark="humaneval",
        eval_dataset=None,
        eval_split=None,
        eval_revision=None,
    )
    training.evaluate_after(tmp_path, qlora_adapter, data, args, {}, "qlora")
    training.evaluate_after(tmp_path, tmp_path, data, args, {}, "lora")  # no training manifest: not 4-bit
    assert [c.device for c in seen] == ["auto", "auto"]  # auto = the GPU this process trained on
    assert [c.quantization for c in seen] == ["4bit", "none"]


def test_run_eval_gives_the_local_backend_its_device_attn_and_quantization(monkeypatch, fake_cuda, tmp_path):
    import letitcode.backends as backends
    from letitcode.config import EvalConfig
    from letitcode.pipeline import run_eval

    fake_cuda()
    seen = {}

    class Stop(Exception):
        pass

    def make_backend(kind, model, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(backends, "make_backend", make_backend)
    with pytest.raises(Stop):
        run_eval(EvalConfig(benchmark="humaneval", limit=1, output_dir=str(tmp_path), quantization="none"))
    assert seen["device"] == "cuda:0" and seen["dtype"] == "auto" and seen["attn_implementation"] == "auto"
    assert seen["quantization"] == "none"


def test_study_eval_fingerprint_ignores_where_the_unit_runs(tmp_path):

    from letitcode.study import units as study

    prep = _humaneval_prep()
    parent, child = _tiny_plan(), _tiny_plan(device="cuda:0")  # the child runs the parent's "auto" as cuda:0
    arm = parent.arm("zero_shot")
    assert study._eval_fp(parent, prep, arm, "humaneval", tmp_path) == study._eval_fp(
        child, prep, arm, "humaneval", tmp_path
    )
    assert study._eval_fp(
        _tiny_plan(quantization="none"), prep, arm, "humaneval", tmp_path
    ) != study._eval_fp(parent, prep, arm, "humaneval", tmp_path)


def test_study_with_serve_starts_one_server_per_model_and_evaluates_through_it(monkeypatch, tmp_path):
    import contextlib
    import dataclasses

    from letitcode import server
    from letitcode.study import units as study
    from letitcode.study.plan import BenchmarkSpec

    spec = dataclasses.asdict(BenchmarkSpec(name="b", benchmark="humaneval"))
    prep = {
        "benchmarks": {b: {"spec": {**spec, "name": b}, "task_ids": ["HumanEval/0"]} for b in ("b1", "b2")},
        "sft": {},
    }
    plan = _tiny_plan(serve="vllm", device="cpu")
    started, ran = [], []

    @contextlib.contextmanager
    def fake_serve(cfg):
        started.append(cfg)
        served = dataclasses.replace(
            cfg,
            backend="openai",
            endpoint="http://127.0.0.1:1/v1",
            model="m",
            serve=None,
            extra_manifest={"server": {"kind": "vllm"}, "served_model": {"spec": cfg.model}},
        )
        yield served, "openai-backend"

    monkeypatch.setattr(server, "serve_for_eval", fake_serve)
    run = lambda cfg, backend=None: ran.append((cfg, backend)) or {"pass@1": 0.0}  # noqa: E731
    with contextlib.ExitStack() as stack:
        backend, served = study._eval_arm(
            plan, prep, plan.arm("zero_shot"), ["b1", "b2"], tmp_path, None, None, stack, None, run
        )
        study._eval_arm(
            plan, prep, plan.arm("zero_shot"), ["b1"], tmp_path, backend, served, stack, None, run
        )
    assert len(started) == 1 and started[0].serve == "vllm"
    assert [c.backend for c, _ in ran] == ["openai"] * 3 and {b for _, b in ran} == {"openai-backend"}
    assert all(
        c.endpoint == "http://127.0.0.1:1/v1" and c.extra_manifest["server"] == {"kind": "vllm"}
        for c, _ in ran
    )
    mem = json.loads((tmp_path / "runs" / "zero_shot" / "memory.json").read_text())
    assert mem["served_by"] == "vllm" and mem["gpu_peak_gib"] is None


def test_an_80_gb_card_meets_an_80_gb_recipe(capsys):
    from letitcode.training.config import Hardware, check_gpu_expectation

    # an H100 80GB: total_memory 85,045,231,616 bytes = 79.2 GiB; recipes say GB as cards are sold
    assert check_gpu_expectation(80, Hardware(True, True, 79.2)) is None
    msg = check_gpu_expectation(80, Hardware(True, True, 39.4))  # a 40 GB A100
    assert msg and "80 GB (74.5 GiB)" in msg and "39.4 GiB" in msg


def test_quantization_4bit_really_loads_the_qlora_base_in_4bit_on_the_cpu(qlora_adapter):
    """The real bitsandbytes path (its CPU backend): NF4 Linear4bit layers under the adapter, and it generates."""
    from letitcode.backends.base import DecodingParams, GenRequest
    from letitcode.backends.local import LocalBackend

    b = LocalBackend(str(qlora_adapter), device="cpu", quantization="4bit", batch_size=2)
    assert b.describe()["quantization"] == "4bit-nf4"
    bnb = [m for m in b.model.modules() if type(m).__module__.startswith("bitsandbytes")]
    assert len(bnb) == 14 and all(type(m).__name__ == "Linear4bit" for m in bnb)  # 7 linears x 2 layers
    out = dict(b.generate([GenRequest("def f():", "k1")], DecodingParams(max_new_tokens=3)))
    assert out[0].n_tokens >= 0 and b.cache_key != b.resolved.cache_key
