"""The prompt templates as data: one `Template` per strategy, versioned and hashed (`letitcode.prompts`
renders them; see its docstring for the chat and completion shapes). Changing any text here changes the
template's hash, so runs made before and after are never compared as equals.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from letitcode.errors import UserError

SYSTEM = (
    "You are an expert Python programmer. Solve the problem in Python 3. "
    "Answer with one complete, self-contained solution in a single ```python code block."
)
COT_SYSTEM = (
    "You are an expert Python programmer. Solve the problem in Python 3. "
    "First reason step by step about the approach, then finish with exactly one ```python code block "
    "holding the complete, self-contained solution."
)

# Base-model layout for problems without a completion prompt. Fields: {system}, {examples}, {description};
# the prompt ends inside an open code block, followed by the starter code up to the signature to complete.
COMPLETION_LAYOUT = '# {system}\n\n{examples}"""\n{description}\n"""\n```python\n'
# Exemplars in completion style (LeetCode-like problems): the same shape as the problem, block closed.
EXAMPLE_COMPLETION = '"""\n{description}\n"""\n```python\n{solution}\n```'
# Exemplars ahead of a HumanEval-style prompt: plain Python, since the model continues a Python file.
EXAMPLE_CODE = '"""\n{description}\n"""\n{solution}'
# Appended to the description where a problem carries tests meant for its prompt (MBPP's first assert).
SPEC = "\n\nYour code should pass this test:\n{tests}"
# Shown in the docstring when the stub has several methods to write (the block opens at the first one).
FULL_STUB = "\n\nImplement every method of:\n{stub}"
# Where a completion-style answer ends with no starter code in the prompt: the close of the open code block.
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
    example_code: str = (
        EXAMPLE_CODE  # an exemplar ahead of a HumanEval-style prompt ({reasoning_comment} too)
    )
    # Appended to the code a completion prompt ends with (HumanEval's prompt, the starter's signature); the
    # generated body continues after it. {indent}: the body's indentation.
    code_cue: str = ""
    block_cue: str = ""  # opens the code block of a completion prompt without starter code
    spec: str = SPEC  # the problem's prompt tests (MBPP), appended to its description
    full_stub: str = FULL_STUB
    # Completion prompts end with the starter code (False only for the ablation in bench/base_model_prompting.py).
    completion_starter: bool = True

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
    version="2",
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
        version="2",
        system=SYSTEM,
        user=(
            "Here are some solved example problems.\n\n{examples}\n\n"
            "Now solve this problem in the same way.\n\n### Problem\n{description}\n\n"
            + _COMPLETE
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
_COT_CODE_CUE = "\n{indent}# Let's think step by step.\n{indent}#"

COT = register(
    Template(
        name="cot",
        version="2",
        system=COT_SYSTEM,
        user="{description}\n\n" + _COMPLETE + _COT_ASK,
        block_cue=_COT_CUE,
        code_cue=_COT_CODE_CUE,
    )
)

COT_FEW_SHOT = register(
    Template(
        name="cot_few_shot",
        version="2",
        system=COT_SYSTEM,
        user=(
            "Here are some solved example problems, each with its reasoning.\n\n{examples}\n\n"
            "Now solve this problem in the same way.\n\n### Problem\n{description}\n\n" + _COMPLETE + _COT_ASK
        ),
        example="### Problem\n{description}\n\n### Reasoning\n{reasoning}\n\n### Solution\n```python\n{solution}\n```",
        # exemplars reason where the problem's answer does: in comments at the top of the function's body
        example_completion='"""\n{description}\n"""\n```python\n{reasoned_solution}\n```',
        example_code='"""\n{description}\n"""\n{reasoned_solution}',
        block_cue=_COT_CUE,
        code_cue=_COT_CODE_CUE,
    )
)

RAG = register(
    Template(
        name="rag",
        version="2",
        system=SYSTEM,
        user=(
            "Here are solved problems similar to the one you must solve.\n\n{examples}\n\n"
            "Now solve this problem.\n\n### Problem\n{description}\n\n"
            + _COMPLETE
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
