"""Prompt templates: versioned data, rendered the same way for evaluation, ICL and SFT.

Each strategy is a `Template`; its hash (of every text it renders with) goes into the result manifest, so
two runs are comparable only when their hashes match. Chat models get a list of messages (the backend
applies the chat template); base models get a plain completion prompt.
"""

from __future__ import annotations

import hashlib
import json
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


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    system: str
    user: str  # str.format fields: {description}, {starter_code}, {examples}
    example: str = ""  # how one exemplar is shown inside {examples}: {description}, {starter_code}, {solution}
    answer_prefix: str = ""  # text the assistant turn starts with in completion style

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


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

    @property
    def template_hash(self) -> str:
        return self.template.hash


def starter(problem: Problem) -> str:
    return (problem.starter_code or problem.prompt or f"def {problem.function_name}(...):").rstrip()


def _fields(problem: Problem, examples: str = "") -> dict[str, str]:
    return {"description": problem.description.strip(), "starter_code": starter(problem), "examples": examples}


def render(
    problem: Problem,
    strategy: str = "zero_shot",
    style: Style = "chat",
    exemplars: Sequence[Problem] = (),
) -> Rendered:
    """Render `problem` with a strategy's template, in chat or completion style."""
    template = get_template(strategy)
    examples = "\n\n".join(
        template.example.format(**_fields(ex), solution=(ex.reference or "").strip()) for ex in exemplars
    )
    if style == "chat":
        messages = []
        if template.system:
            messages.append({"role": "system", "content": template.system})
        messages.append({"role": "user", "content": template.user.format(**_fields(problem, examples))})
        return Rendered(messages, template, style)
    if problem.prompt:
        # Completion benchmarks (HumanEval): continue the prompt itself. Its trailing newline is stripped, as
        # bigcode-evaluation-harness does; with it, small models emit an empty body (measured: 0/164).
        text = problem.prompt.rstrip()
        prefix = (examples + "\n\n") if examples else ""
        return Rendered(prefix + text, template, style, code_prefix=text)
    # Base models on LeetCode-style problems: a docstring-style prompt ending inside a code block.
    body = f"# {template.system}\n\n" if template.system else ""
    if examples:
        body += examples + "\n\n"
    body += f'"""\n{problem.description.strip()}\n"""\n```python\n' + template.answer_prefix
    return Rendered(body, template, style)


def sft_example(problem: Problem, completion: str, style: Style = "chat") -> dict:
    """A TRL prompt/completion example using the same zero-shot prompt the evaluator uses, so a fine-tuned
    model is evaluated on exactly the format it was trained on."""
    rendered = render(problem, "zero_shot", style)
    if style == "chat":
        return {"prompt": rendered.prompt, "completion": [{"role": "assistant", "content": completion}]}
    return {"prompt": rendered.prompt, "completion": completion}
