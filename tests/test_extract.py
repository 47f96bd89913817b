from letitcode.extract import extract_code, fit_entry_point, truncate_completion


def test_single_fenced_block():
    text = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nThat's it."
    ext = extract_code(text, "add")
    assert ext.method == "fenced"
    assert ext.code.strip() == "def add(a, b):\n    return a + b"


def test_several_blocks_choose_the_one_with_the_entry_point():
    text = (
        "First a helper idea:\n```python\nx = [1, 2]\nprint(x)\n```\n"
        "Solution:\n```python\nclass Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n```\n"
        "Usage:\n```python\nprint(Solution().twoSum([1], 2))\n```"
    )
    ext = extract_code(text, "Solution().twoSum")
    assert "def twoSum" in ext.code and "print(x)" not in ext.code


def test_cot_last_block_defining_entry_wins():
    text = (
        "Step 1: think.\n```python\ndef f(n):\n    return 0\n```\nWait, that's wrong. Final:\n"
        "```python\ndef f(n):\n    return n * 2\n```"
    )
    assert "n * 2" in extract_code(text, "f").code


def test_non_python_blocks_are_ignored():
    text = "```java\nclass A {}\n```\n```python\ndef g():\n    return 1\n```"
    assert extract_code(text, "g").code.strip().startswith("def g")


def test_unfenced_code_after_prose():
    text = "Sure! The answer is below.\ndef sq(x):\n    return x * x\n"
    ext = extract_code(text, "sq")
    assert ext.method == "unfenced" and ext.code.startswith("def sq")


def test_truncated_output_is_trimmed_until_it_parses():
    text = "```python\ndef h(x):\n    y = x + 1\n    return y\n\ndef broken(:\n    retu"
    ext = extract_code(text, "h")
    assert ext.truncated
    assert "def h" in ext.code and "broken" not in ext.code
    compile(ext.code, "<t>", "exec")


def test_prose_only_is_no_code():
    ext = extract_code("I am not sure how to solve this problem, sorry.", "f")
    assert ext.code is None and ext.method == "none"


def test_truncate_completion_stops_at_next_definition():
    assert truncate_completion("    return 1\n\ndef other():\n    pass") == "    return 1\n"
    assert truncate_completion("    return 1\n```\nExplanation") == "    return 1"


def test_fit_entry_point_wraps_top_level_function():
    code = "def twoSum(nums, target):\n    return [0, 1]\n"
    fitted, changed = fit_entry_point(code, "Solution().twoSum")
    assert changed
    ns: dict = {}
    exec(fitted, ns)
    assert ns["Solution"]().twoSum([1, 2], 3) == [0, 1]
    same, changed = fit_entry_point("class Solution:\n    def twoSum(self): pass\n", "Solution().twoSum")
    assert not changed
    assert fit_entry_point(code, "twoSum") == (code, False)


# -- completion-style answers continue the prompt's code (issue 12) ------------------------------------------

STUB = "class Solution:\n    def climbStairs(self, n: int) -> int:"


def test_completion_program_is_the_starter_plus_the_generation_cut_at_its_stop():
    from letitcode.extract import complete_program

    text = "\n        a, b = 1, 1\n        for _ in range(n):\n            a, b = b, a + b\n        return a\n```\n\nIt is Fibonacci."
    ext = complete_program(STUB, text)
    assert ext.code.startswith(STUB) and "Fibonacci" not in ext.code and not ext.truncated
    ns: dict = {}
    exec(ext.code, ns)
    assert ns["Solution"]().climbStairs(5) == 8


def test_completion_cut_mid_statement_keeps_the_starter_and_what_parses():
    from letitcode.extract import complete_program

    ext = complete_program(
        STUB,
        "\n        if n < 2:\n            return 1\n        return self.climbStairs(n - 1) + self.climbStairs(n -",
    )
    assert ext.truncated and ext.code.startswith(STUB) and "(n -\n" not in ext.code and "return 1" in ext.code
    compile(ext.code, "<t>", "exec")
    # nothing useful generated: the broken program goes to the sandbox as it is (a syntax error, honestly)
    assert complete_program(STUB, "\n```").code == STUB


def test_a_chat_answer_holding_only_the_body_gets_the_starter():
    from letitcode.extract import with_starter

    body = "        return 1 if n < 2 else n\n"
    code, started = with_starter(body, STUB + "\n        ", "Solution().climbStairs")
    assert started and code.startswith(STUB)
    compile(code, "<t>", "exec")
    full = STUB + "\n        return n\n"
    assert with_starter(full, STUB, "Solution().climbStairs") == (full, False)  # already whole
    assert with_starter("x = 1\n", STUB, "Solution().climbStairs") == ("x = 1\n", False)  # not a body
