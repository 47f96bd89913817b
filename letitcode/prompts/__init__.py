"""Prompt templates: versioned data (`letitcode.prompts.templates`), rendered the same way for evaluation, ICL
and SFT.

Each strategy is a `Template`; its hash (of every text it renders with) goes into the result manifest, so
two runs are comparable only when their hashes match. Chat models get a list of messages (the backend
applies the chat template); base models get a plain completion prompt.

Strategies: `zero_shot`, `few_shot` (k fixed exemplars), `cot` (reason, then one final code block),
`cot_few_shot` (exemplars with worked reasoning) and `rag` (k nearest train problems per test problem).
A template with a non-empty `example` needs exemplars; `letitcode.retrieval.exemplars_for` picks them.

Completion style (base models such as gemma-7b) ends every prompt inside code the model continues, so it
never has to guess the entry point's name:
- problems with a completion prompt (HumanEval): the model continues the prompt itself; exemplars come first
  as plain Python;
- problems with starter code (LeetCode's class stub, MBPP's signature): a docstring with the statement (MBPP:
  plus its first assert, as MBPP's standard prompt has), then an open ```python block holding the starter code
  up to the signature the model must complete (a stub with several empty methods, a design problem, is shown
  whole in the docstring and opened at its first method);
- problems without starter code: the same docstring and an open block, and the model writes everything.
In the first two shapes the program scored is the code in the prompt plus the generation (`Rendered.code_prefix`),
and CoT reasoning goes in comments at the top of the function body, so the answer is still one program.

Version 2 of every template (the starter code and the MBPP assert in completion prompts) is not comparable with
version 1: the manifest records the version and hash.

Also here, because training and evaluation must agree on them: which prompt style a model gets
(`resolve_style`: explicit > the training manifest > a seed table > the tokenizer's chat template), the fold of
a system turn into the first user turn for chat templates that reject one (Gemma's), and `encode_prompt`, the
one tokenization of a prompt for generation, identical to TRL's SFTTrainer's (BOS exactly once).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from letitcode.data.problem import Problem
from letitcode.errors import UserError
from letitcode.extract import COMPLETION_STOPS, body_indent, open_starter
from letitcode.prompts.templates import BLOCK_STOPS, Template, get_template

Style = Literal["chat", "completion"]

# A chat prompt is a list of {"role", "content"} messages; a completion prompt is a plain string.
Prompt = str | list[dict[str, str]]


def prompt_hash(prompt: Prompt) -> str:
    """The prompt's identity in the generation cache."""
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rendered:
    prompt: Prompt
    template: Template
    style: Style
    # Completion style: the code the prompt ends with (HumanEval's prompt, the starter up to its signature, plus
    # any cue); the program scored is this + the generation. Empty where the model writes the whole program.
    code_prefix: str = ""
    # Stop strings that end an answer to this prompt in completion style (none in chat style).
    stops: tuple[str, ...] = ()

    @property
    def template_hash(self) -> str:
        return self.template.hash


def starter(problem: Problem) -> str:
    return (problem.starter_code or problem.prompt or f"def {problem.function_name}(...):").rstrip()


def _description(problem: Problem, template: Template) -> str:
    """The statement, plus the tests a benchmark shows in its prompt (MBPP's first assert)."""
    text = problem.description.strip()
    tests = problem.extra.get("prompt_tests") or ()
    if tests and template.spec:
        text += template.spec.format(tests="\n".join(tests))
    return text


def _fields(problem: Problem, template: Template, examples: str = "") -> dict[str, str]:
    return {
        "description": _description(problem, template),
        "starter_code": starter(problem),
        "examples": examples,
    }


def _cue(cue: str, code: str) -> str:
    return cue.format(indent=body_indent(code)) if cue else ""


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


def _reasoned_solution(solution: str, name: str, reasoning: str) -> str:
    """The solution with its reasoning as comments at the top of `name`'s body (after a docstring), where a
    completion-style CoT prompt asks for it; at the top of the code where no such function is found."""
    comments = ["# Let's think step by step."] + [
        "# " + line for line in reasoning.splitlines() if line.strip()
    ]
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        tree = None
    node = next(
        (
            n
            for n in (ast.walk(tree) if tree else ())
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
        ),
        None,
    )
    if node is not None and node.body and node.body[0].lineno > node.lineno:
        body = node.body
        docstring = isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant
        )
        lines = solution.splitlines()
        if docstring and len(body) > 1:
            at, col = body[1].lineno - 1, body[1].col_offset
        elif docstring:
            at, col = (body[0].end_lineno or body[0].lineno), body[0].col_offset
        else:
            at, col = body[0].lineno - 1, body[0].col_offset
        pad = " " * col
        return "\n".join(lines[:at] + [pad + c for c in comments] + lines[at:])
    return "# Reasoning:\n" + "\n".join(comments[1:] or ["#"]) + "\n" + solution


def _example_fields(ex: Problem, template: Template) -> dict[str, str]:
    reasoning = exemplar_reasoning(ex)
    # A completion-style exemplar's reference is only the body: show it with its signature.
    solution = ((ex.prompt + ex.reference) if ex.prompt and ex.reference else (ex.reference or "")).strip()
    return {
        "description": _description(ex, template),
        "starter_code": starter(ex),
        "solution": solution,
        "reasoning": reasoning,
        "reasoning_comment": "\n".join("# " + line for line in reasoning.splitlines()) or "#",
        "reasoned_solution": _reasoned_solution(solution, ex.function_name, reasoning),
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
        examples = "\n\n".join(template.example.format(**_example_fields(ex, template)) for ex in exemplars)
        messages = []
        if template.system:
            messages.append({"role": "system", "content": template.system})
        messages.append(
            {"role": "user", "content": template.user.format(**_fields(problem, template, examples))}
        )
        return Rendered(messages, template, style)
    if style != "completion":
        raise UserError(f"unknown prompt style {style!r}: choose chat or completion")
    if problem.prompt and template.completion_starter:
        # Completion benchmarks (HumanEval): continue the prompt itself. Its trailing newline is stripped, as
        # bigcode-evaluation-harness does; with it, small models emit an empty body (measured: 0/164).
        head = problem.prompt.rstrip()
        text = head + _cue(template.code_cue, head)
        examples = "\n\n".join(
            template.example_code.format(**_example_fields(ex, template)) for ex in exemplars
        )
        prefix = (examples + "\n\n\n") if examples else ""
        return Rendered(prefix + text, template, style, code_prefix=text, stops=COMPLETION_STOPS)
    # Base models on LeetCode-style problems: a docstring with the statement, then an open code block that
    # holds the starter code up to the signature, so the model writes the body (and never guesses the name).
    examples = "".join(
        template.example_completion.format(**_example_fields(ex, template)) + "\n\n" for ex in exemplars
    )
    fields = _fields(problem, template, examples)
    code = ""
    if template.completion_starter and problem.starter_code.strip():
        opened, whole = open_starter(problem.starter_code)
        if not whole:
            fields["description"] += template.full_stub.format(stub=problem.starter_code.strip("\n").rstrip())
        # Trailing whitespace stripped, as for HumanEval: the model starts the body's line itself.
        code = opened.rstrip() + _cue(template.code_cue, opened)
    body = template.completion.format(system=template.system, **fields) + template.answer_prefix
    if code:
        return Rendered(body + code, template, style, code_prefix=code, stops=COMPLETION_STOPS)
    return Rendered(body + template.block_cue, template, style, stops=BLOCK_STOPS)


def continuation(prefix: str, text: str) -> str | None:
    """What `text` holds after `prefix`, matching whitespace loosely (None if `text` does not start with it).

    A training solution's own copy of the starter ("List[int]" spaced differently, a blank line more) still
    counts as the starter, so the completion trained on is exactly what follows it."""
    j = 0
    for ch in prefix:
        if ch.isspace():
            continue
        while j < len(text) and text[j].isspace():
            j += 1
        if j >= len(text) or text[j] != ch:
            return None
        j += 1
    return text[j:]


def _own_header(text: str, name: str) -> str | None:
    """The code of `text` up to (and with) the signature of `name`, when that function's body starts on a
    line of its own: the starter a solution that does not begin with the problem's own starter continues."""
    code = text.split("\n```", 1)[0]
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name and node.body:
            if node.body[0].lineno <= node.lineno:
                return None
            lines = code.splitlines()[: node.body[0].lineno - 1]
            while lines and not lines[-1].rstrip().endswith(":"):
                lines.pop()  # comments between the signature and the body
            return "\n".join(lines) if lines else None
    return None


def sft_example(problem: Problem, completion: str, style: Style = "chat") -> dict:
    """A TRL prompt/completion example using the same zero-shot prompt the evaluator uses, so a fine-tuned
    model is evaluated on exactly the format it was trained on.

    In completion style the prompt ends with the starter code, so the completion is what follows it in the
    solution. A solution that does not start with the problem's starter (helper methods first, other type
    hints) gets its own code up to the entry point's signature as the starter; one without that function is
    shown after an open block with no starter, as the evaluator does for problems without starter code."""
    rendered = render(problem, "zero_shot", style)
    if style == "chat":
        return {"prompt": rendered.prompt, "completion": [{"role": "assistant", "content": completion}]}
    if not rendered.code_prefix:
        return {"prompt": rendered.prompt, "completion": completion}
    rest = continuation(rendered.code_prefix, completion)
    if rest is None:
        header = _own_header(completion, problem.function_name)
        if header is not None:
            rendered = render(dataclasses.replace(problem, starter_code=header), "zero_shot", style)
            rest = continuation(rendered.code_prefix, completion)
    if rest is None:
        rendered = render(dataclasses.replace(problem, starter_code=""), "zero_shot", style)
        rest = completion
    return {"prompt": rendered.prompt, "completion": rest}


# ------------------------------------------------------------------------------------------ prompt style

StyleSetting = Literal["auto", "chat", "completion"]

# What each seed model was made for, so that nothing has to be sniffed: a base model continues text, an
# instruct model answers chat turns. Keys are lower-case Hub ids or LetItCode's model names.
SEED_STYLES: dict[str, Style] = {
    "google/gemma-7b": "completion",
    "meta-llama/llama-3.1-8b-instruct": "chat",
    "microsoft/phi-3-mini-4k-instruct": "chat",
    "embedded": "chat",
    "embedded-base": "completion",
    "huggingfacetb/smollm2-135m-instruct": "chat",  # what `embedded` is
    "google/gemma-3-270m": "completion",  # what `embedded-base` is
}


@dataclass(frozen=True)
class StyleChoice:
    style: Style
    source: str  # what decided it: --prompt_style, a training manifest, the seed table, the chat template


def training_style(folder: str | Path) -> Style | None:
    """The prompt style a fine-tuned model or adapter was trained with, from the manifest.json that
    sft/train.py writes next to it (None where there is none)."""
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    style = (manifest.get("data") or {}).get("prompt_style") if isinstance(manifest, dict) else None
    return style if manifest.get("kind") == "sft" and style in ("chat", "completion") else None


def seed_style(name: str | None) -> Style | None:
    if not name:
        return None
    return SEED_STYLES.get(name.rsplit("@", 1)[0].rstrip("/").lower())


def resolve_style(
    setting: str | None,
    *,
    model: str,
    resolved: Any = None,
    served: str | None = None,
    has_chat_template: bool | None = None,
) -> StyleChoice:
    """The prompt style for a model, in this order: `setting` (--prompt_style chat|completion) > the training
    manifest of a fine-tuned model or adapter (what it was trained with) > `SEED_STYLES` (the spec, the served
    name, the Hub origin, an adapter's base) > whether the local tokenizer has a chat template
    (`has_chat_template`, None for endpoints). An endpoint model found nowhere is a one-line error."""
    if setting not in (None, "", "auto"):
        if setting not in ("chat", "completion"):
            raise UserError(f"--prompt_style must be auto, chat or completion, not {setting!r}")
        return StyleChoice(setting, "--prompt_style")  # type: ignore[arg-type]
    base = getattr(resolved, "base", None)
    for folder in (getattr(resolved, "path", None), getattr(base, "path", None)):
        style = training_style(folder) if folder else None
        if style:
            return StyleChoice(style, f"training manifest ({Path(folder).name}/manifest.json)")
    for name in (model, served, getattr(resolved, "hub_id", None), getattr(base, "hub_id", None)):
        style = seed_style(name)
        if style:
            return StyleChoice(style, f"seed table ({name})")
    if has_chat_template is not None:
        return StyleChoice("chat" if has_chat_template else "completion", "tokenizer chat template")
    raise UserError(
        f"--model {served or model!r}: cannot tell whether it takes chat or completion prompts (an endpoint "
        "model without a training manifest or a seed-table entry); pass --prompt_style chat or completion"
    )


# ------------------------------------------------------------------------------------------ system turn

_SYSTEM_PROBE = "letitcode-system-probe"
# Served models whose chat templates reject a system turn (checked by name, since an endpoint's template
# cannot be read): Gemma's ("System role not supported"); Gemma 3's folds it into the first user turn itself.
NO_SYSTEM_TURN_NAMES = ("gemma",)


def supports_system_turn(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a system turn (Gemma's raises or drops it)."""
    cached = getattr(tokenizer, "_letitcode_system_turn", None)
    if cached is not None:
        return cached
    if not getattr(tokenizer, "chat_template", None):
        ok = True  # no template: chat prompts fail elsewhere, with their own message
    else:
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "system", "content": _SYSTEM_PROBE}, {"role": "user", "content": "hi"}],
                tokenize=False,
                add_generation_prompt=True,
            )
            ok = _SYSTEM_PROBE in text
        except Exception:  # jinja's raise_exception("System role not supported")
            ok = False
    try:
        tokenizer._letitcode_system_turn = ok
    except AttributeError:
        pass
    return ok


def rejects_system_turn(name: str | None) -> bool:
    return bool(name) and any(n in name.lower() for n in NO_SYSTEM_TURN_NAMES)


def fold_system(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The system turn's text put at the head of the first user turn (as Gemma 3's own template does)."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    text = "\n\n".join(system)
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{text}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": text}, *rest]


def fit_prompt(prompt: Prompt, tokenizer: Any) -> Prompt:
    """The prompt as this tokenizer's chat template accepts it: a system turn folded where it is rejected."""
    if isinstance(prompt, list) and not supports_system_turn(tokenizer):
        return fold_system(prompt)
    return prompt


def fit_example(example: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """`fit_prompt` on a TRL prompt/completion example (training folds exactly as evaluation does)."""
    if isinstance(example.get("prompt"), list):
        return {**example, "prompt": fit_prompt(example["prompt"], tokenizer)}
    return example


# ------------------------------------------------------------------------------------------ tokenization


def _encode_text(tokenizer: Any, text: str) -> list[int]:
    """TRL tokenizes a string prompt with the tokenizer's own special tokens (`processing_class(text=...)`):
    Gemma's and Llama's BOS. A special token appended after the text (an EOS, for tokenizers that add one) is
    dropped: in training the completion follows the prompt, so no training sequence has it there."""
    full = list(tokenizer(text).input_ids)
    plain = list(tokenizer(text, add_special_tokens=False).input_ids)
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            return full[: k + len(plain)]
    return full


def encode_prompt(tokenizer: Any, prompt: Prompt, *, add_bos: bool = True) -> list[int]:
    """The token ids of a prompt for generation, exactly as TRL's SFTTrainer tokenizes the same prompt for
    training (trl/trainer/sft_trainer.py, `_tokenize` in trl/data_utils.py):
    - messages: `apply_chat_template(..., tokenize=True, add_generation_prompt=True)`; the template writes BOS
      and transformers tokenizes its text without adding special tokens;
    - a string: the tokenizer with its special tokens, so a BOS-adding tokenizer (Gemma, Llama) gives BOS.
    A system turn is folded where the template rejects one (`fit_prompt`; training folds the same way). BOS is
    never doubled (a string that already starts with the BOS text). `add_bos=False` drops it: only for the
    ablation in bench/base_model_prompting.py."""
    prompt = fit_prompt(prompt, tokenizer)
    if isinstance(prompt, list):
        out = tokenizer.apply_chat_template(
            prompt, tokenize=True, add_generation_prompt=True, return_dict=True
        )
        ids = list(out["input_ids"])
    else:
        ids = _encode_text(tokenizer, prompt)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        while len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        if not add_bos and ids and ids[0] == bos:
            ids = ids[1:]
    return ids


def prompt_text(tokenizer: Any, prompt: Prompt) -> str:
    """The text a local model is given for a prompt (its chat template applied; special tokens the tokenizer
    adds itself, such as a string prompt's BOS, are not in it: `n_prompt_tokens` counts them)."""
    prompt = fit_prompt(prompt, tokenizer)
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
