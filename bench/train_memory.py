"""Memory and speed of LoRA, QLoRA, DoRA, IA³ and full fine-tuning on the embedded model (CPU).

Each method runs a few optimizer steps through the real `sft/train.py` path (`letitcode.training.trainer.train`)
in its own fresh subprocess, so peak RSS (from `os.wait4` on that child) is that method's alone. Prints
absolute figures and ratios to full fine-tuning, then packing against padding in real (non-pad) tokens/s.

    .venv/bin/python bench/train_memory.py                      # 20-40 min on 2 shared cores
    .venv/bin/python bench/train_memory.py --steps 3 --methods lora,full --json runs/bench/train_memory.json

Data: LeetCodeDataset train from ../shared/data when present, else the small test fixture (say which).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LCD = REPO.parent / "shared" / "data" / "leetcodedataset" / "LeetCodeDataset-v0.2.0-train.jsonl.gz"
FIXTURE = REPO / "tests" / "fixtures" / "sft" / "raybernard_sample.jsonl"
METHODS = ("full", "lora", "qlora", "dora", "ia3")


def worker(args: argparse.Namespace) -> None:
    """One method, in this (fresh) process; writes its figures as JSON to args.result."""
    from transformers import TrainerCallback

    from letitcode.training.config import Hardware, parse_args
    from letitcode.training.trainer import train

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.t0 = 0.0

        def on_step_begin(self, a, state, control, **kw):  # noqa: ANN001
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):  # noqa: ANN001
            self.times.append(time.perf_counter() - self.t0)

    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="letitcode-bench-") as out:
        argv = [
            "--model", "embedded", "--method", args.worker, "--dataset", args.dataset,
            "--completion_format", "code", "--decontaminate", "false", "--val_fraction", "0",
            "--output_dir", out, "--max_steps", str(args.steps), "--per_device_train_batch_size", str(args.batch),
            "--gradient_accumulation_steps", "1", "--max_length", str(args.max_length),
            "--packing", str(args.packing).lower(), "--logging_steps", "1", "--save_strategy", "no",
            "--eval_strategy", "no", "--report_to", "none", "--seed", "0",
            "--gradient_checkpointing", args.gradient_checkpointing == "on" and "true" or "false",
            "--bf16", str(args.bf16).lower(), "--cpu_memory_saving", "off" if args.no_cpu_memory_saving else "auto",
        ]  # fmt: skip
        manifest = train(*parse_args(argv, hardware=Hardware(False, False)), callbacks=[timer])
        state = json.loads((Path(out) / "trainer_state.json").read_text())
    logs = [e for e in state["log_history"] if "num_tokens" in e]
    steady = timer.times[1:] or timer.times  # the first step pays for lazy initialisation
    tokens = logs[-1]["num_tokens"] - logs[0]["num_tokens"] if len(logs) > 1 else logs[-1]["num_tokens"]
    result = {
        "method": args.worker,
        "packing": args.packing,
        "steps": len(timer.times),
        "s_per_step": statistics.median(steady),
        "tokens_per_s": tokens / sum(timer.times[1:])
        if len(logs) > 1
        else logs[-1]["num_tokens"] / sum(timer.times),
        "tokens_per_step": tokens / max(1, len(logs) - 1),
        "trainable": manifest["parameters"]["trainable"],
        "total": manifest["parameters"]["total"],
        "quantized_linear_layers": manifest["parameters"]["quantized_linear_layers"],
        "final_loss": manifest["losses"]["final_train_loss"],
    }
    Path(args.result).write_text(json.dumps(result))


def run_child(method: str, packing: bool, args: argparse.Namespace, batch: int | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = f.name
    cmd = [
        sys.executable, __file__, "--worker", method, "--result", result, "--dataset", args.dataset,
        "--steps", str(args.steps), "--batch", str(batch or args.batch), "--max-length", str(args.max_length),
        "--gradient-checkpointing", args.gradient_checkpointing,
        *(["--bf16"] if args.bf16 else []),
        *(["--no-cpu-memory-saving"] if args.no_cpu_memory_saving else []),
    ] + (["--packing"] if packing else [])  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be the max over every child so far)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise SystemExit(f"{method} (packing={packing}) failed with exit code {proc.returncode}:\n{tail}")
    out = json.loads(Path(result).read_text())
    os.unlink(result)
    out["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    out["wall_s"] = time.time() - started
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per method (the first is not timed)")
    p.add_argument(
        "--batch", type=int, default=1, help="per step; 1 x 1024 tokens is the embedded recipes' shape"
    )
    p.add_argument("--max-length", type=int, default=1024)
    p.add_argument("--dataset", default=str(LCD if LCD.exists() else FIXTURE))
    p.add_argument(
        "--gradient-checkpointing",
        choices=["on", "off"],
        default="on",
        help="on (TRL's default, and the GPU recipes'): activations stay small, so weights, gradients and "
        "optimizer states decide the memory; off (the CPU recipes'): activations dominate and PEFT saves little",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast (TRL's default; the fp32 weights stay fp32): activations and logits at half size",
    )
    p.add_argument(
        "--no-cpu-memory-saving",
        action="store_true",
        help="train with TRL's GPU-sized LM-head tiles and glibc's dynamic mmap threshold (sft/train.py "
        "--cpu_memory_saving off) instead of the default 'auto': the memory CPU training keeps without "
        "letitcode/cpu_memory.py",
    )
    p.add_argument("--packing-method", default="lora", help="method for the packing vs padding comparison")
    p.add_argument(
        "--packing-batch",
        type=int,
        default=4,
        help="examples (padding) or packed rows (packing) per step in that comparison; padding waste needs a batch",
    )
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--packing", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0

    methods = [m.strip() for m in args.methods.split(",") if m.strip() and m.strip() != "none"]
    if methods and "full" not in methods:
        methods.insert(0, "full")  # the reference for every ratio
    print(f"data: {args.dataset} | embedded SmolLM2-135M-Instruct, fp32{' + bf16 autocast' if args.bf16 else ''}"
          f"{', cpu_memory_saving off' if args.no_cpu_memory_saving else ', cpu_memory_saving auto'}, CPU ({os.cpu_count()} cores) | "
          f"batch {args.batch}, max_length {args.max_length}, gradient checkpointing {args.gradient_checkpointing}, "
          f"{args.steps} steps each (first untimed)", flush=True)  # fmt: skip
    rows = {}
    for m in methods:
        rows[m] = run_child(m, False, args)
        r = rows[m]
        print(f"  {m:<6} peak RSS {r['peak_rss_mb']:7.0f} MB  {r['s_per_step']:6.2f} s/step  "
              f"trainable {r['trainable']:>11,}  ({r['wall_s']:.0f} s wall)", flush=True)  # fmt: skip
    summary: dict = {"config": vars(args) | {"worker": None}, "methods": rows}
    if rows:
        full = rows["full"]
        print(
            "\n| method | peak RSS (MB) | RSS / full | s/step | s/step / full | trainable params | trainable / full |"
        )
        print("|---|---|---|---|---|---|---|")
        for m, r in rows.items():
            print(
                f"| {m} | {r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] / full['peak_rss_mb']:.2f} | "
                f"{r['s_per_step']:.2f} | {r['s_per_step'] / full['s_per_step']:.2f} | {r['trainable']:,} | "
                f"{r['trainable'] / full['trainable']:.5f} |"
            )
        if "lora" in rows:
            goal = rows["lora"]["peak_rss_mb"] / full["peak_rss_mb"]
            print(f"LoRA peak RSS / full: {goal:.2f} (goal <= 0.60: {'met' if goal <= 0.6 else 'NOT met'})")
    if args.packing_batch > 0:
        pm, pb = args.packing_method, args.packing_batch
        padded = rows[pm] if pm in rows and pb == args.batch else run_child(pm, False, args, batch=pb)
        packed = run_child(pm, True, args, batch=pb)
        ratio = packed["tokens_per_s"] / padded["tokens_per_s"]
        summary["packing"] = {"method": pm, "batch": pb, "padded": padded, "packed": packed, "ratio": ratio}
        print(f"\npacking vs padding ({pm}, {pb} rows/examples per step, real tokens/s): {ratio:.2f}x "
              f"({packed['tokens_per_s']:.1f} vs {padded['tokens_per_s']:.1f} tok/s; "
              f"{packed['tokens_per_step']:.0f} vs {padded['tokens_per_step']:.0f} real tokens per step; "
              f"peak RSS {packed['peak_rss_mb']:.0f} vs {padded['peak_rss_mb']:.0f} MB)")  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
