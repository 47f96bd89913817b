"""The study's units: one `sft/train.py` subprocess per fine-tuning arm, one evaluation subprocess per model
(`python -m letitcode.study.runner eval-arms`), the commands and configurations they run, their fingerprints,
and the one GPU each is pinned to (CUDA_VISIBLE_DEVICES).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from letitcode import devices
from letitcode.config import EvalConfig
from letitcode.errors import UserError
from letitcode.records import write_json
from letitcode.study.layout import (
    Timings,
    eval_model,
    fingerprint,
    fmt_s,
    is_done,
    log,
    mark_done,
    merged,
    merged_dir,
    run_dir,
    train_dir,
)
from letitcode.study.plan import REPO, ArmSpec, BenchmarkSpec, StudyPlan, missing_data

TRAIN_SCRIPT = REPO / "sft" / "train.py"


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


def eval_config(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, bench: str, out: Path) -> Any:

    info = prep["benchmarks"][bench]
    spec = BenchmarkSpec(**info["spec"])
    exemplars = resolve_exemplars(spec.exemplar_dataset, prep)
    return EvalConfig(
        model=eval_model(plan, arm, out),
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
        if missing_data(path):
            continue
        return alt
    raise UserError(f"none of the exemplar sources {alternatives} is available (missing data or no SFT pool)")


def _eval_fp(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, bench: str, out: Path) -> str:
    cfg = dataclasses.asdict(eval_config(plan, prep, arm, bench, out))
    # the device is where a unit runs (the child sees its pinned GPU as cuda:0), not what it computes
    for k in ("output_dir", "progress", "model", "device"):
        cfg.pop(k)
    train_fp = _train_fp(plan, prep, arm, out) if arm.train else plan.model
    return fingerprint({"cfg": cfg, "model": train_fp, "backend_options": plan.backend_options})


def unit_device(plan: StudyPlan) -> tuple[str, dict[str, str]]:
    """(the device a unit's process uses, the environment that pins it there). A plan's `cuda:N` (or `auto` on a
    GPU machine: the first visible GPU) becomes CUDA_VISIBLE_DEVICES=<that GPU> and, inside the unit, `cuda:0`:
    one unit, one GPU. `--device cuda` without CUDA fails here, before any unit starts."""

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
    if is_done(folder, fp):
        log(f"train {arm.name}: already done, skipped")
        return
    cmd = train_command(plan, prep, arm, out)
    log(f"train {arm.name}: {' '.join(cmd[1:])}")
    log_path = folder.parent / f"{folder.name}.log"
    multi_gpu = bool(arm.train and (arm.train.accelerate_config or plan.sft.accelerate_config))
    _, pin = unit_device(plan)
    rc, seconds, rss = _run_child(cmd, log_path, plan.cpu_threads, env_extra=None if multi_gpu else pin)
    timings.add(f"train/{arm.name}", seconds)
    if rc != 0:
        raise UserError(f"training arm {arm.name!r} failed (exit {rc}); log: {log_path}: {_tail(log_path)}")
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
    mark_done(folder, fp, seconds=round(seconds, 2), peak_rss_gib=round(rss / 1024, 3))
    log(f"train {arm.name}: done in {fmt_s(seconds)} (peak RSS {rss / 1024:.2f} GiB)")


def pending_benchmarks(plan: StudyPlan, prep: Mapping[str, Any], arm: ArmSpec, out: Path) -> list[str]:
    return [
        b for b in prep["order"] if not is_done(run_dir(out, arm.name, b), _eval_fp(plan, prep, arm, b, out))
    ]


def eval_groups(plan: StudyPlan, out: Path) -> list[list[ArmSpec]]:
    """Arms grouped by the model they evaluate (the in-context arms share the base model), so each model is
    loaded once, in one subprocess; every fine-tuned arm is a group of its own."""
    groups: dict[str, list[ArmSpec]] = {}
    for arm in plan.arms:
        groups.setdefault(eval_model(plan, arm, out), []).append(arm)
    return list(groups.values())


def run_arm_evals(
    plan: StudyPlan, prep: Mapping[str, Any], arms: Sequence[ArmSpec], out: Path, timings: Timings
) -> None:
    todo = {a.name: pending_benchmarks(plan, prep, a, out) for a in arms}
    names = [n for n, p in todo.items() if p]
    label = "+".join(a.name for a in arms)
    if not names:
        log(f"evaluate {label}: every benchmark already done, skipped")
        return
    log("evaluate " + "; ".join(f"{n}: {', '.join(todo[n])}" for n in names))
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
    log_path = out / "runs" / f"{label}.log"
    rc, seconds, _ = _run_child(cmd, log_path, plan.cpu_threads, env_extra=pin)
    timings.add(f"eval/{label}", seconds, runs=sum(len(todo[n]) for n in names))
    if rc != 0:
        raise UserError(f"evaluating {label} failed (exit {rc}); log: {log_path}: {_tail(log_path)}")
    log(f"evaluate {label}: done in {fmt_s(seconds)}")


def eval_arms_child(out: Path, arm_names: Sequence[str], device: str | None = None) -> None:
    """In a subprocess: evaluate arms that share one model on their pending benchmarks, loading the model
    once (or starting one server for it, with `serve`); record each arm's peak memory (the peak is reset
    between arms). `device` is the unit's own device (the parent pinned it to one GPU)."""
    plan = StudyPlan.from_dict(json.loads((out / "plan.json").read_text()))
    if device:
        plan.device = device
    prep = json.loads((out / "prepare.json").read_text())
    arms = [plan.arm(n) for n in arm_names]
    if len({eval_model(plan, a, out) for a in arms}) != 1:
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
            eval_model(plan, arm, out),
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
        log(
            f"{arm.name} / {bench}: {len(cfg.task_ids)} problems, {cfg.strategy}, max_new_tokens {cfg.max_new_tokens}"
        )
        results = run_eval(cfg, backend=backend)
        seconds = time.perf_counter() - t0
        mark_done(Path(cfg.output_dir), _eval_fp(plan, prep, arm, bench, out), seconds=round(seconds, 2))
        log(f"{arm.name} / {bench}: pass@1 {results.get('pass@1', 0):.3f} in {fmt_s(seconds)}")
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
