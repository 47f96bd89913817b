"""pass@k by executing candidate programs against test code in LetItCode's sandbox.

Same inputs as Hugging Face's `code_eval`, but the code runs in LetItCode's isolated worker pool
(bubblewrap where available: read-only root, no network, rlimits, scrubbed environment) instead of the
host interpreter, and no opt-in environment variable is needed.
"""

from collections import Counter

import datasets
import numpy as np

import evaluate

# The sandbox ships as local modules (links to letitcode/sandbox/ in the repo, copies in a staged Space),
# which `evaluate` copies next to this script: the metric loads without `letitcode` installed. It copies
# only the modules this script imports itself, not theirs, so every file of the sandbox is imported here
# (sandbox.py imports isolation, pool and protocol; the pool runs jobs in worker.py). No comment may follow
# an import line here: `evaluate` reads "import x  # ..." as a URL to download.
from .isolation import ISOLATION_LEVELS
from .job import ExecJob
from .pool import run_jobs
from .protocol import STATUSES
from .sandbox import Sandbox
from .worker import REPORT_CAP

_CITATION = """\
@misc{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Mark Chen and Jerry Tworek and Heewoo Jun and Qiming Yuan and others},
  year={2021},
  eprint={2107.03374},
  archivePrefix={arXiv},
}
"""

_DESCRIPTION = """\
pass@k is the probability that at least one of k samples drawn from the n candidates generated for a
problem passes all of that problem's tests, estimated without bias as 1 - C(n-c, k) / C(n, k) (Chen et
al., 2021) and averaged over problems. Candidates run in LetItCode's sandbox: a pool of isolated workers
with CPU, memory and wall-clock limits, no network and no credentials. A candidate passes only if the
test code demonstrably ran to its end, so `sys.exit(0)` or `os._exit(0)` cannot fake a pass.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of candidate lists, one list of n program strings per problem.
    references: list of test-code strings, one per problem, run after the candidate program (e.g.
        "assert add(2, 3) == 5"). With `entry_points`, the test code can also call `candidate`.
    k: the k values to report (default [1, 10, 100]); values above the smallest n are dropped.
    entry_points: optional list of expressions, one per problem, bound to `candidate` after the
        program ran (e.g. "add" or "Solution().twoSum").
    timeout: seconds allowed per candidate (default 10).
    workers: sandbox workers (default: one per CPU).
    memory_mb: address-space limit per candidate (default 4096).
Returns:
    "pass@k" for each reported k, "n_problems", "status_counts" (passed, wrong_answer, runtime_error,
    syntax_error, timeout, memory_limit, killed) and "isolation" (the sandbox level in force).
Examples:
    >>> pass_at_k = evaluate.load("evaluate/metrics/pass_at_k")
    >>> out = pass_at_k.compute(
    ...     predictions=[["def add(a, b):\\n    return a + b", "def add(a, b):\\n    return a - b"]],
    ...     references=["assert add(2, 3) == 5"],
    ...     k=[1, 2],
    ... )
    >>> out["pass@1"], out["pass@2"]
    (0.5, 1.0)
"""


def _pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased estimator 1 - C(n-c, k) / C(n, k), as `letitcode.scoring.passk.pass_at_k`
    (restated: this file must not import `letitcode`)."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Value("string"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2107.03374"],
            license="Apache-2.0",
        )

    def _compute(
        self,
        predictions,
        references,
        k=(1, 10, 100),
        entry_points=None,
        timeout=10.0,
        workers=None,
        memory_mb=4096,
    ):
        if entry_points is not None and len(entry_points) != len(references):
            raise ValueError(f"{len(entry_points)} entry_points for {len(references)} problems")
        if any(len(cands) == 0 for cands in predictions):
            raise ValueError("every problem needs at least one candidate")
        n_min = min(len(cands) for cands in predictions)
        ks = sorted({int(x) for x in ([k] if isinstance(k, int) else k) if int(x) <= n_min})
        if not ks:
            raise ValueError(
                f"every k in {k} exceeds the smallest number of candidates per problem ({n_min})"
            )
        jobs, owner = [], []
        for i, (cands, test) in enumerate(zip(predictions, references, strict=True)):
            # the sandbox binds `candidate` to an entry point; without one, tests name the function themselves
            entry = entry_points[i] if entry_points else "None"
            for j, program in enumerate(cands):
                jobs.append(
                    ExecJob(
                        program=program,
                        entry_point=entry,
                        test_list=(test,),
                        timeout_s=float(timeout),
                        task_id=f"{i}/{j}",
                    )
                )
                owner.append(i)
        with Sandbox(workers, memory_mb=int(memory_mb)) as sandbox:
            results = sandbox.run(jobs, progress=False)
            isolation = sandbox.isolation
        correct = [0] * len(references)
        for i, res in zip(owner, results, strict=True):
            correct[i] += bool(res.passed)
        out = {
            f"pass@{kk}": sum(
                _pass_at_k(len(c), n_ok, kk) for c, n_ok in zip(predictions, correct, strict=True)
            )
            / len(predictions)
            for kk in ks
        }
        out["n_problems"] = len(predictions)
        out["status_counts"] = dict(Counter(r.status for r in results))
        out["isolation"] = isolation
        return out
