"""Base-model prompting ablation: pass@1 of a base model with and without BOS, with and without starter code.

    .venv/bin/python bench/base_model_prompting.py --model embedded-base --humaneval 40 --leetcode 30

`embedded-base` is google/gemma-3-270m (a base model whose tokenizer adds BOS), the CPU stand-in for
gemma-7b. Each arm runs the real pipeline (`letitcode.pipeline.run_eval`, greedy, completion prompts):
- BOS: the prompt tokenized as training tokenizes it (`prompts.encode_prompt`), or with its BOS dropped
  (`--ablate_bos`, the bug of issue 12);
- starter code: the completion prompt ends inside the code block with the starter code, the signature to complete
  (HumanEval's prompt, LeetCode's class stub), or it shows only the statement and an empty block
  (`--ablate_starter_code`: the template version 1 layout, where the model must guess the entry point's name).
Without either flag, the four arms run one after the other (each resumes from its own generation cache, so a
killed run continues where it stopped) and the table is written to OUTPUT_DIR/table.md after every arm.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from letitcode.config import EvalConfig  # noqa: E402
from letitcode.pipeline import run_eval  # noqa: E402
from letitcode.prompts import templates  # noqa: E402

NO_STARTER = "zero_shot_no_starter"


def register_no_starter() -> str:
    """The zero-shot template without starter code in completion prompts (its own name and hash)."""
    if NO_STARTER not in templates.TEMPLATES:
        templates.register(
            dataclasses.replace(templates.ZERO_SHOT, name=NO_STARTER, completion_starter=False)
        )
    return NO_STARTER


def arms(args: argparse.Namespace) -> list[tuple[bool, bool]]:
    """(bos, starter) pairs to run: one when an ablation flag is given, else all four (the fixed path first)."""
    if args.ablate_bos or args.ablate_starter_code:
        return [(not args.ablate_bos, not args.ablate_starter_code)]
    return [(True, True), (False, True), (True, False), (False, False)]


def first_task_ids(benchmark: str, n: int) -> list[str]:
    from letitcode.data.benchmarks import load_benchmark

    return [p.task_id for p in load_benchmark(benchmark).problems[:n]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded-base")
    ap.add_argument("--humaneval", type=int, default=40, help="first N HumanEval problems (0: skip)")
    ap.add_argument(
        "--leetcode", type=int, default=30, help="N embedded LeetCode problems, stratified (0: skip)"
    )
    ap.add_argument("--max_new_tokens", type=int, default=256)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--output_dir", default="runs/bench-base-prompting")
    ap.add_argument("--ablate_bos", action="store_true", help="run only the arm without BOS")
    ap.add_argument(
        "--ablate_starter_code", action="store_true", help="run only the arm without starter code"
    )
    ap.add_argument(
        "--table_only", action="store_true", help="only rebuild OUTPUT_DIR/table.md from the arms already run"
    )
    args = ap.parse_args(argv)
    out = Path(args.output_dir)
    if args.table_only:
        write_table(out, collect(out), args)
        print((out / "table.md").read_text())
        return 0

    from letitcode.backends.local import LocalBackend

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with_bos = LocalBackend(args.model, batch_size=args.batch_size, dtype=args.dtype)
    print(f"loaded {args.model} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    backends = {
        True: with_bos,
        False: LocalBackend(
            with_bos.resolved,
            batch_size=args.batch_size,
            dtype=args.dtype,
            loaded=(with_bos.model, with_bos.tokenizer),
            add_bos=False,
        ),
    }
    benches = [(b, n) for b, n in (("humaneval", args.humaneval), ("leetcode", args.leetcode)) if n > 0]
    rows: list[dict] = []
    for bos, starter in arms(args):
        strategy = "zero_shot" if starter else register_no_starter()
        for bench, n in benches:
            arm = f"{bench}-{'bos' if bos else 'nobos'}-{'starter' if starter else 'nostarter'}"
            cfg = EvalConfig(
                model=args.model,
                benchmark=bench,
                task_ids=first_task_ids(bench, n) if bench == "humaneval" else None,
                limit=n if bench != "humaneval" else None,
                strategy=strategy,
                prompt_style="completion",
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                dtype=args.dtype,
                output_dir=str(out / arm),
                approach=arm,
                progress=False,
            )
            started = time.perf_counter()
            run_eval(cfg, backend=backends[bos])
            row = summarize(out / arm, bench, bos, starter)
            row["minutes"] = round((time.perf_counter() - started) / 60, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            write_table(out, collect(out), args)
    print((out / "table.md").read_text())
    return 0


def body_written(code: str | None, name: str) -> bool:
    """Whether the code defines the entry point with a body of its own: a statement that is not a docstring,
    `pass` or `...` (a continuation of blank lines or a repeated docstring leaves the stub empty)."""
    import ast

    try:
        tree = ast.parse(code or "")
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            real = [
                st
                for st in node.body
                if not isinstance(st, ast.Pass)
                and not (isinstance(st, ast.Expr) and isinstance(getattr(st, "value", None), ast.Constant))
            ]
            if real:
                return True
    return False


_NAMES: dict[str, dict[str, str]] = {}


def entry_names(bench: str) -> dict[str, str]:
    from letitcode.data.benchmarks import load_benchmark

    if bench not in _NAMES:
        _NAMES[bench] = {p.task_id: p.function_name for p in load_benchmark(bench).problems}
    return _NAMES[bench]


def summarize(folder: Path, bench: str, bos: bool, starter: bool) -> dict:
    """One arm's row: pass@1, and where pass@1 is all zeros the signals that still separate the arms (programs
    that run at all, the mean fraction of tests passed, answers cut at max_new_tokens)."""
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    results = json.loads((folder / "results.json").read_text())
    n = len(samples)
    rates = [s["test_pass_rate"] for s in samples if s.get("test_pass_rate") is not None]
    return {
        "benchmark": bench,
        "bos": bos,
        "starter_code": starter,
        "n": n,
        "passed": sum(1 for s in samples if s["passed"]),
        "pass@1": results["pass@1"],
        "runs": sum(1 for s in samples if s["status"] not in ("syntax_error", "no_code")),
        "body_written": sum(
            1 for s in samples if body_written(s.get("code"), entry_names(bench)[s["task_id"]])
        ),
        "tests_passed": sum(rates) / n if n else 0.0,
        "cut_at_max_tokens": sum(1 for s in samples if s.get("finish_reason") == "length"),
        "prompt_bos": sum(1 for s in samples if s.get("prompt_bos")),
        "status": results.get("status_counts"),
    }


def collect(out: Path) -> list[dict]:
    """The rows of every arm found under `out`, in the table's order."""
    rows = []
    for bench in ("humaneval", "leetcode"):
        for bos, starter in [(True, True), (False, True), (True, False), (False, False)]:
            folder = out / f"{bench}-{'bos' if bos else 'nobos'}-{'starter' if starter else 'nostarter'}"
            if (folder / "results.json").exists():
                rows.append(summarize(folder, bench, bos, starter))
    return rows


def write_table(out: Path, rows: list[dict], args: argparse.Namespace) -> None:
    lines = [
        f"{args.model}, greedy, completion prompts, max_new_tokens {args.max_new_tokens}, {args.dtype}",
        "",
        "| benchmark | BOS | starter code | problems | pass@1 (solved) | entry point with a body | programs that run "
        "| tests passed (mean) | cut at max tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {'yes' if r['bos'] else 'no'} | {'yes' if r['starter_code'] else 'no'} | "
            f"{r['n']} | {r['pass@1']:.3f} ({r['passed']}) | {r['body_written']} | {r['runs']} | {r['tests_passed']:.3f} | "
            f"{r['cut_at_max_tokens']} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "table.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
