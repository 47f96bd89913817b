"""Prompt templates: versioned data, rendered the same way for evaluation, ICL and SFT.

Each strategy is a `Template`; its hash (of every text it renders with) goes into the result manifest, so
two runs are comparable only when their hashes match. Chat models get a list of messages (the backend
applies the chat template); base models get a plain completion prompt.

Strategies: `zero_shot`, `few_shot` (k fixed exemplars), `cot` (reason, then one final code block),
`cot_few_shot` (exemplars with worked reasoning) and `rag` (k nearest train problems per test problem).
A template with a non-empty `example` needs exemplars; `letitcode.retrieval.exemplars_for` picks them.

Completion style has two shapes:
- problems with a completion prompt (HumanEval): the model continues the prompt itself, the program is
  prompt + generation (`Rendered.code_prefix`), and exemplars come first as plain Python;
- other problems (LeetCode, MBPP): a docstring with the statement, then an open ```python block. CoT puts its
  reasoning in comments at the top of that block, so the answer is still one code block.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from letitcode.backends.base import Prompt
from letitcode.errors import UserError
from letitcode.problems import Problem

Style = Literal["chat", "completion"]

SYSTEM = (
    "You are an expert Python programmer. Solve the problem in Python 3. "
    "Answer with one complete, self-contained solution in a single ```python code block."
)
COT_SYSTEM = (
    "You are an expert Python programmer. Solve the problem in Python 3. "
    "First reason step by step about the approach, then finish with exactly one ```python code block "
    "holding the complete, self-contained solution."
)

# Base-model layout for problems without a completion prompt. Fields: {system}, {examples},
# {description}, {starter_code}; the prompt ends inside an open code block.
COMPLETION_LAYOUT = '# {system}\n\n{examples}"""\n{description}\n"""\n```python\n'
# Exemplars in completion style (LeetCode-like problems): the same shape as the problem, block closed.
EXAMPLE_COMPLETION = '"""\n{description}\n"""\n```python\n{solution}\n```'
# Exemplars ahead of a HumanEval-style prompt: plain Python, since the model continues a Python file.
EXAMPLE_CODE = '"""\n{description}\n"""\n{solution}'
# Where a completion-style answer ends (LeetCode-like layout): the close of the open code block.
BLOCK_STOPS = ("\n```",)


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    system: str
    user: str  # str.format fields: {description}, {starter_code}, {examples}
    # How one exemplar is shown inside {examples} (chat style): {description}, {starter_code}, {solution},
    # {reasoning}, {title}. Non-empty means the strategy needs exemplars.
    example: str = ""
    answer_prefix: str = ""  # text the assistant turn starts with in completion style
    completion: str = COMPLETION_LAYOUT  # completion-style prompt for problems without a completion prompt
    example_completion: str = EXAMPLE_COMPLETION  # an exemplar in that layout
    example_code: str = EXAMPLE_CODE  # an exemplar ahead of a HumanEval-style prompt ({reasoning_comment} too)
    code_cue: str = ""  # appended to a HumanEval-style prompt; the generated body continues after it

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def needs_exemplars(self) -> bool:
        return bool(self.example)

    @property
    def needs_reasoning(self) -> bool:
        """Exemplars must carry worked reasoning (cot_few_shot)."""
        return "{reasoning" in self.example


_COMPLETE = "Complete this code:\n```python\n{starter_code}\n```\n"

ZERO_SHOT = Template(
    name="zero_shot",
    version="1",
    system=SYSTEM,
    user=(
        "{description}\n\nComplete this code:\n```python\n{starter_code}\n```\n"
        "Return the full solution in one ```python code block."
    ),
)

TEMPLATES: dict[str, Template] = {ZERO_SHOT.name: ZERO_SHOT}


def register(template: Template) -> Template:
    TEMPLATES[template.name] = template
    return template


_EXAMPLE = "### Problem\n{description}\n\n### Solution\n```python\n{solution}\n```"

FEW_SHOT = register(
    Template(
        name="few_shot",
        version="1",
        system=SYSTEM,
        user=(
            "Here are some solved example problems.\n\n{examples}\n\n"
            "Now solve this problem in the same way.\n\n### Problem\n{description}\n\n" + _COMPLETE
            + "Return the full solution in one ```python code block."
        ),
        example=_EXAMPLE,
    )
)

_COT_ASK = (
    "First think step by step: explain the approach and its time complexity in a few sentences. "
    "Then give the full solution in one final ```python code block."
)
_COT_CUE = "# Let's think step by step in comments first, then write the code.\n# Reasoning:\n#"

COT = register(
    Template(
        name="cot",
        version="1",
        system=COT_SYSTEM,
        user="{description}\n\n" + _COMPLETE + _COT_ASK,
        completion=COMPLETION_LAYOUT + _COT_CUE,
        code_cue="\n    # Let's think step by step.\n    #",
    )
)

COT_FEW_SHOT = register(
    Template(
        name="cot_few_shot",
        version="1",
        system=COT_SYSTEM,
        user=(
            "Here are some solved example problems, each with its reasoning.\n\n{examples}\n\n"
            "Now solve this problem in the same way.\n\n### Problem\n{description}\n\n" + _COMPLETE + _COT_ASK
        ),
        example="### Problem\n{description}\n\n### Reasoning\n{reasoning}\n\n### Solution\n```python\n{solution}\n```",
        completion=COMPLETION_LAYOUT + _COT_CUE,
        example_completion='"""\n{description}\n"""\n```python\n# Reasoning:\n{reasoning_comment}\n{solution}\n```',
        example_code='"""\n{description}\n"""\n# Reasoning:\n{reasoning_comment}\n{solution}',
        code_cue="\n    # Let's think step by step.\n    #",
    )
)

RAG = register(
    Template(
        name="rag",
        version="1",
        system=SYSTEM,
        user=(
            "Here are solved problems similar to the one you must solve.\n\n{examples}\n\n"
            "Now solve this problem.\n\n### Problem\n{description}\n\n" + _COMPLETE
            + "Return the full solution in one ```python code block."
        ),
        example=_EXAMPLE,
    )
)


def get_template(strategy: str) -> Template:
    try:
        return TEMPLATES[strategy]
    except KeyError:
        raise UserError(f"unknown prompt strategy {strategy!r}: choose one of {sorted(TEMPLATES)}") from None


@dataclass(frozen=True)
class Rendered:
    prompt: Prompt
    template: Template
    style: Style
    # In completion style for completion benchmarks (HumanEval), the program is prompt text + generation.
    code_prefix: str = ""
    # Stop strings that end an answer to this prompt in completion style (none in chat style).
    stops: tuple[str, ...] = ()

    @property
    def template_hash(self) -> str:
        return self.template.hash


def starter(problem: Problem) -> str:
    return (problem.starter_code or problem.prompt or f"def {problem.function_name}(...):").rstrip()


def _fields(problem: Problem, examples: str = "") -> dict[str, str]:
    return {"description": problem.description.strip(), "starter_code": starter(problem), "examples": examples}


_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
REASONING_KEYS = ("reasoning", "explanation", "response")
MAX_REASONING_CHARS = 700
_PRESENTATION = re.compile(
    r"^(?:\*\*)?(?:explanation|approach|solution|code)(?:\*\*)?:?(?:\*\*)?$"
    r"|^(?:certainly|sure|of course)\b"
    r"|^(?:here(?:'s| is)|below is)\b.*(?:code|implementation|solution)"
    r"|\b(?:code|implementation|solution)\b[^.]*:$",
    re.I,
)


def exemplar_reasoning(problem: Problem, max_chars: int = MAX_REASONING_CHARS) -> str:
    """The worked reasoning of an exemplar: its explanation text without code, cut at a sentence end.

    LeetCodeDataset's `response` (an explanation around the reference) is the source; "" where none exists.
    """
    raw = next((problem.extra.get(k) for k in REASONING_KEYS if problem.extra.get(k)), "")
    if not isinstance(raw, str):
        return ""
    text = _FENCED.sub("\n", raw)
    text = re.sub(r"^#+\s*", "", text, flags=re.M)  # markdown headings read as prose here
    # Lines that only present the code ("Here's the complete implementation:", "Explanation:") say nothing
    # about the approach.
    lines = [ln.strip() for ln in text.splitlines()]
    text = "\n".join(ln for ln in lines if ln and not _PRESENTATION.search(ln))
    text = re.sub(r"[ \t]+", " ", text).strip()
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    return (cut[: end + 1] if end > max_chars // 3 else cut.rstrip() + " ...").strip()


def _example_fields(ex: Problem) -> dict[str, str]:
    reasoning = exemplar_reasoning(ex)
    return {
        "description": ex.description.strip(),
        "starter_code": starter(ex),
        # A completion-style exemplar's reference is only the body: show it with its signature.
        "solution": ((ex.prompt + ex.reference) if ex.prompt and ex.reference else (ex.reference or "")).strip(),
        "reasoning": reasoning,
        "reasoning_comment": "\n".join("# " + line for line in reasoning.splitlines()) or "#",
        "title": ex.title,
    }


def _check_exemplars(template: Template, problem: Problem, exemplars: Sequence[Problem]) -> None:
    for ex in exemplars:
        if not (ex.reference or "").strip():
            raise UserError(f"exemplar {ex.task_id!r} for {problem.task_id!r} has no reference solution")
        if template.needs_reasoning and not exemplar_reasoning(ex):
            raise UserError(
                f"strategy {template.name!r} needs exemplars with worked reasoning; "
                f"exemplar {ex.task_id!r} ({ex.source}) has none"
            )


def render(
    problem: Problem,
    strategy: str = "zero_shot",
    style: Style = "chat",
    exemplars: Sequence[Problem] = (),
) -> Rendered:
    """Render `problem` with a strategy's template, in chat or completion style."""
    template = get_template(strategy)
    if exemplars and not template.example:
        raise UserError(f"strategy {strategy!r} takes no exemplars, but {len(exemplars)} were given")
    _check_exemplars(template, problem, exemplars)
    if style == "chat":
        examples = "\n\n".join(template.example.format(**_example_fields(ex)) for ex in exemplars)
        messages = []
        if template.system:
            messages.append({"role": "system", "content": template.system})
        messages.append({"role": "user", "content": template.user.format(**_fields(problem, examples))})
        return Rendered(messages, template, style)
    if style != "completion":
        raise UserError(f"unknown prompt style {style!r}: choose chat or completion")
    if problem.prompt:
        # Completion benchmarks (HumanEval): continue the prompt itself. Its trailing newline is stripped, as
        # bigcode-evaluation-harness does; with it, small models emit an empty body (measured: 0/164).
        from letitcode.extract import COMPLETION_STOPS

        text = problem.prompt.rstrip() + template.code_cue
        examples = "\n\n".join(template.example_code.format(**_example_fields(ex)) for ex in exemplars)
        prefix = (examples + "\n\n\n") if examples else ""
        return Rendered(prefix + text, template, style, code_prefix=text, stops=COMPLETION_STOPS)
    # Base models on LeetCode-style problems: a docstring-style prompt ending inside a code block.
    examples = "".join(template.example_completion.format(**_example_fields(ex)) + "\n\n" for ex in exemplars)
    fields = _fields(problem, examples)
    body = template.completion.format(system=template.system, **fields) + template.answer_prefix
    return Rendered(body, template, style, stops=BLOCK_STOPS)


def sft_example(problem: Problem, completion: str, style: Style = "chat") -> dict:
    """A TRL prompt/completion example using the same zero-shot prompt the evaluator uses, so a fine-tuned
    model is evaluated on exactly the format it was trained on."""
    rendered = render(problem, "zero_shot", style)
    if style == "chat":
        return {"prompt": rendered.prompt, "completion": [{"role": "assistant", "content": completion}]}
    return {"prompt": rendered.prompt, "completion": completion}
