"""Prompt templates: every strategy renders in both styles, hashes track the text, CoT answers extract."""

from __future__ import annotations

import dataclasses

import pytest

from letitcode import prompts
from letitcode.data.problem import Problem
from letitcode.errors import UserError
from letitcode.extract import COMPLETION_STOPS, extract_code
from letitcode.prompts import templates

STRATEGIES = ("zero_shot", "few_shot", "cot", "cot_few_shot", "rag")

LEET = Problem(
    task_id="climbing-stairs",
    source="test",
    title="Climbing Stairs",
    description="You are climbing a staircase. It takes n steps to reach the top. How many distinct ways?",
    entry_point="Solution().climbStairs",
    difficulty="Easy",
    starter_code="class Solution:\n    def climbStairs(self, n: int) -> int:\n",
)
HUMANEVAL_LIKE = Problem(
    task_id="T/0",
    source="test",
    title="add",
    description="Add two numbers.",
    entry_point="add",
    prompt='def add(a: int, b: int) -> int:\n    """Add two numbers."""\n',
)


def exemplar(i: int, *, reasoning: bool = True) -> Problem:
    return Problem(
        task_id=f"ex-{i}",
        source="train",
        title=f"Example {i}",
        description=f"Return {i} times the input x.",
        entry_point="Solution().times",
        difficulty="Easy",
        reference=f"class Solution:\n    def times(self, x: int) -> int:\n        return {i} * x\n",
        extra={
            "response": f"Multiplying by {i} is a single step.\n```python\nreturn {i} * x\n```\nIt runs in O(1)."
        }
        if reasoning
        else {},
    )


EXEMPLARS = [exemplar(1), exemplar(2)]


def _needs(strategy: str) -> list[Problem]:
    return EXEMPLARS if prompts.get_template(strategy).needs_exemplars else []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_chat_rendering_has_problem_and_exemplars(strategy):
    r = prompts.render(LEET, strategy, "chat", _needs(strategy))
    assert r.style == "chat" and r.stops == ()
    system, user = r.prompt
    assert system["role"] == "system" and user["role"] == "user"
    assert LEET.description in user["content"]
    assert "def climbStairs" in user["content"]
    for ex in _needs(strategy):
        assert ex.description in user["content"] and ex.reference.strip() in user["content"]
    if strategy == "cot_few_shot":
        assert "Multiplying by 1 is a single step." in user["content"]
        assert "return 1 * x\n```\nIt runs" not in user["content"]  # the reasoning shows no code
    if strategy.startswith("cot"):
        assert "step by step" in user["content"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_completion_rendering_leetcode_style_ends_with_the_starter_code(strategy):
    """A base model continues the class stub inside the open code block: it never guesses the method's name,
    and the program scored is the prompt's code + the generation."""
    r = prompts.render(LEET, strategy, "completion", _needs(strategy))
    assert isinstance(r.prompt, str) and r.prompt.endswith(r.code_prefix)
    assert r.code_prefix.startswith("class Solution:\n    def climbStairs(self, n: int) -> int:")
    assert r.stops == COMPLETION_STOPS
    assert LEET.description in r.prompt
    body = r.prompt.rsplit("```python\n", 1)[1]
    assert "```" not in body and body == r.code_prefix  # the answer goes into the last, still open, block
    continuation = (
        " one step or two.\n        return n\n" if strategy.startswith("cot") else "\n        return n\n"
    )
    compile(r.code_prefix + continuation, "<program>", "exec")
    if strategy.startswith("cot"):  # the reasoning goes in comments at the top of the method's body
        assert r.code_prefix.endswith("\n        # Let's think step by step.\n        #")
    for ex in _needs(strategy):
        assert ex.reference.strip().splitlines()[-1].strip() in r.prompt
        if strategy == "cot_few_shot":  # exemplars reason where the answer will: inside the method
            assert "        # Let's think step by step.\n        # Multiplying by" in r.prompt


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_completion_rendering_without_starter_code_opens_an_empty_block(strategy):
    bare = dataclasses.replace(LEET, starter_code="")
    r = prompts.render(bare, strategy, "completion", _needs(strategy))
    assert r.code_prefix == "" and r.stops == templates.BLOCK_STOPS
    body = r.prompt.rsplit("```python\n", 1)[1]
    assert "```" not in body
    assert body.startswith("# Let's think step by step") if strategy.startswith("cot") else body == ""


def test_design_problem_stub_is_shown_whole_and_opened_at_its_first_method():
    stub = (
        "class MinStack:\n    def __init__(self):\n        \n\n    def push(self, val: int) -> None:\n        \n\n"
        "    def getMin(self) -> int:\n        "
    )
    design = dataclasses.replace(LEET, entry_point="MinStack", starter_code=stub)
    r = prompts.render(design, "zero_shot", "completion")
    assert r.code_prefix == "class MinStack:\n    def __init__(self):"
    head = r.prompt[: -len(r.code_prefix)]
    assert "def push(self, val: int) -> None:" in head and "def getMin(self) -> int:" in head
    body = "\n        self.s = []\n\n    def push(self, val):\n        self.s.append(val)\n"
    compile(r.code_prefix + body, "<program>", "exec")
    assert prompts.open_starter("def f(x):\n") == ("def f(x):", True)


def test_entry_point_names_are_in_completion_prompts_of_real_benchmarks(shared_data):
    """gemma-7b got prompts without the signature and had to guess `Solution().shortestDistanceAfterQueries`
    or MBPP's `remove_Occ`: the names (and MBPP's first assert) are now in every prompt."""
    from letitcode.data.benchmarks import load_benchmark

    mbpp = load_benchmark("mbpp", dataset=str(shared_data / "mbpp" / "mbpp.jsonl"))
    lcd = load_benchmark("leetcodedataset", dataset=str(shared_data / "leetcodedataset"))
    cases = [
        (next(p for p in lcd.problems if p.entry_point == "Solution().shortestDistanceAfterQueries"), None),
        (
            next(p for p in mbpp.problems if p.entry_point == "remove_Occ"),
            'assert remove_Occ("hello","l") == "heo"',
        ),
    ]
    for problem, first_assert in cases:
        for style in ("completion", "chat"):
            r = prompts.render(problem, "zero_shot", style)
            text = r.prompt if style == "completion" else r.prompt[-1]["content"]
            assert f"def {problem.function_name}(" in text, (problem.task_id, style)
            if first_assert:
                assert first_assert in text
        r = prompts.render(problem, "zero_shot", "completion")
        assert f"def {problem.function_name}(" in r.code_prefix  # inside the open block, where it continues
    # the ablation template (bench/base_model_prompting.py) really drops the signature
    ablated = templates.Template(**{**dataclasses.asdict(templates.ZERO_SHOT), "completion_starter": False})
    assert ablated.hash != templates.ZERO_SHOT.hash


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_completion_rendering_humaneval_style_continues_the_prompt(strategy):
    r = prompts.render(HUMANEVAL_LIKE, strategy, "completion", _needs(strategy))
    assert r.prompt.endswith(r.code_prefix)
    assert r.code_prefix.startswith(HUMANEVAL_LIKE.prompt.rstrip())
    assert r.stops == COMPLETION_STOPS
    # Whatever the cue, prompt + a plausible continuation is a valid program.
    continuation = " add them.\n    return a + b\n" if strategy.startswith("cot") else "\n    return a + b\n"
    compile(r.code_prefix + continuation, "<program>", "exec")
    if _needs(strategy):
        head = r.prompt[: -len(r.code_prefix)]
        compile(head, "<exemplars>", "exec")  # exemplars ahead of a Python prompt are Python too
        assert "return 2 * x" in head


def test_template_hash_changes_with_any_text():
    t = prompts.get_template("few_shot")
    assert t.hash == prompts.get_template("few_shot").hash  # stable
    fields = (
        "user",
        "system",
        "example",
        "completion",
        "example_completion",
        "code_cue",
        "block_cue",
        "spec",
        "version",
    )
    for field in fields:
        changed = dataclasses.replace(t, **{field: getattr(t, field) + " "})
        assert changed.hash != t.hash, field


def test_every_strategy_has_its_own_hash_and_the_right_exemplar_needs():
    hashes = {prompts.get_template(s).hash for s in STRATEGIES}
    assert len(hashes) == len(STRATEGIES)
    needs = {s for s in STRATEGIES if prompts.get_template(s).needs_exemplars}
    assert needs == {"few_shot", "cot_few_shot", "rag"}
    assert prompts.get_template("cot_few_shot").needs_reasoning
    assert not prompts.get_template("few_shot").needs_reasoning


def test_rendered_prompt_changes_with_template_text(monkeypatch):
    before = prompts.render(LEET, "cot", "chat")
    monkeypatch.setitem(
        templates.TEMPLATES, "cot", dataclasses.replace(templates.COT, user=templates.COT.user + " Be brief.")
    )
    after = prompts.render(LEET, "cot", "chat")
    assert after.template_hash != before.template_hash
    assert after.prompt[1]["content"].endswith("Be brief.")


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="unknown prompt strategy 'nope'"):
        prompts.render(LEET, "nope")
    with pytest.raises(UserError, match="takes no exemplars"):
        prompts.render(LEET, "zero_shot", "chat", EXEMPLARS)
    with pytest.raises(UserError, match="worked reasoning"):
        prompts.render(LEET, "cot_few_shot", "chat", [exemplar(3, reasoning=False)])
    with pytest.raises(UserError, match="no reference"):
        prompts.render(LEET, "few_shot", "chat", [dataclasses.replace(exemplar(4), reference=None)])


def test_exemplar_reasoning_keeps_prose_only_and_is_bounded():
    response = (
        "Certainly! Below is the complete implementation:\n```python\nclass Solution: ...\n```\n"
        "### Explanation:\n- Use a hash map from value to index.\n- One pass suffices.\n"
        + "More detail. "
        * 200
    )
    text = prompts.exemplar_reasoning(dataclasses.replace(LEET, extra={"response": response}))
    assert text.startswith("- Use a hash map")
    assert "Certainly" not in text and "class Solution" not in text and "Explanation" not in text
    assert len(text) <= prompts.MAX_REASONING_CHARS
    assert prompts.exemplar_reasoning(LEET) == ""


def test_sft_example_uses_the_zero_shot_prompt():
    ex = prompts.sft_example(LEET, "```python\nclass Solution: pass\n```")
    assert ex["prompt"] == prompts.render(LEET, "zero_shot", "chat").prompt
    assert ex["completion"][0]["role"] == "assistant"


def test_sft_completion_style_trains_on_what_follows_the_starter():
    """Completion-style SFT prompts are the evaluator's (ending with the signature); the completion is the rest
    of the solution, so prompt + completion is the whole program."""
    evaluated = prompts.render(LEET, "zero_shot", "completion")
    same = "class Solution:\n    def climbStairs(self, n: int)->int:\n        return n\n```\n\nFibonacci."
    ex = prompts.sft_example(LEET, same, "completion")
    assert ex["prompt"] == evaluated.prompt
    assert ex["completion"] == "\n        return n\n```\n\nFibonacci."
    # a helper method first: the solution's own code up to the signature is the starter
    helper = "class Solution:\n    def _f(self, n):\n        return n\n\n    def climbStairs(self, n):\n        return self._f(n)\n```"
    ex = prompts.sft_example(LEET, helper, "completion")
    assert (
        ex["prompt"].endswith("    def climbStairs(self, n):")
        and ex["completion"] == "\n        return self._f(n)\n```"
    )
    compile(ex["prompt"].rsplit("```python\n", 1)[1] + ex["completion"].split("```")[0], "<p>", "exec")
    # no such function at all: an open block without starter, and the whole answer as the completion
    other = "def solve(n):\n    return n\n```"
    ex = prompts.sft_example(LEET, other, "completion")
    assert ex["prompt"].endswith("```python\n") and ex["completion"] == other


def test_every_template_is_version_2():
    assert {prompts.get_template(s).version for s in STRATEGIES} == {"2"}


# -- chain-of-thought answers: several code blocks, the final solution must win ---------------------------

COT_ANSWER = """Let's think step by step.
The number of ways to reach step n is ways(n-1) + ways(n-2), like Fibonacci. A naive recursion is:
```python
def ways(n):
    return ways(n - 1) + ways(n - 2)
```
That is exponential. Memoising gives O(n). For example:
```python
print(Solution().climbStairs(3))  # 3
```
Final solution:
```python
class Solution:
    def climbStairs(self, n: int) -> int:
        a, b = 1, 1
        for _ in range(n):
            a, b = b, a + b
        return a
```
This runs in O(n) time and O(1) space."""


def test_cot_answer_with_several_blocks_extracts_the_final_solution():
    ext = extract_code(COT_ANSWER, LEET.entry_point)
    assert ext.method == "fenced"
    assert "a, b = b, a + b" in ext.code and "print(" not in ext.code and "def ways" not in ext.code
    ns: dict = {}
    exec(ext.code, ns)
    assert ns["Solution"]().climbStairs(5) == 8


def test_cot_completion_style_answer_with_reasoning_comments_extracts_code():
    # What a base model writes after the completion-style CoT cue (reasoning comments, then code).
    text = " ways(n) = ways(n-1) + ways(n-2).\n# Iterate with two variables.\nclass Solution:\n    def climbStairs(self, n):\n        a, b = 1, 1\n        for _ in range(n):\n            a, b = b, a + b\n        return a\n"
    ext = extract_code(text, LEET.entry_point)
    assert ext.code is not None and ext.code.startswith("class Solution")
    ns: dict = {}
    exec(ext.code, ns)
    assert ns["Solution"]().climbStairs(4) == 5


def test_cot_answer_truncated_inside_the_final_block_keeps_what_parses():
    text = COT_ANSWER.split("        return a")[0] + "        return a\n\n    def extra(self):\n        retu"
    ext = extract_code(text, LEET.entry_point)
    assert ext.truncated and "def climbStairs" in ext.code
    compile(ext.code, "<t>", "exec")
