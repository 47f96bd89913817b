"""The fraction of individual test cases a candidate passes, executed in LetItCode's sandbox.

pass@k gives no credit to a solution that fails one test of twenty; this metric does (it is the
"PassedTestCase" column of the LeetCode fine-tuning study LetItCode reproduces).
"""

from collections import Counter

import datasets

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
@software{letitcode,
  title={LetItCode: fine-tune and evaluate code LLMs on LeetCode},
  year={2025},
}
"""

_DESCRIPTION = """\
For each candidate program, the fraction of its problem's test statements that pass. Each test statement
runs on its own after the program (a failing or crashing test does not stop the next one), inside
LetItCode's sandbox (isolated workers, CPU/memory/time limits, no network). A syntax error, a crash while
defining the program, or a timeout passes no test. The metric reports the mean fraction over candidates
and the fraction of candidates that pass every test.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of candidate programs, one per problem.
    references: list of test-statement lists, one list per problem (e.g. ["assert add(1, 2) == 3",
        "assert add(0, 0) == 0"]). With `entry_points`, statements can call `candidate`.
    entry_points: optional list of expressions bound to `candidate` after the program ran.
    timeout: seconds allowed per candidate, all its tests together (default 10).
    workers: sandbox workers (default: one per CPU).
    memory_mb: address-space limit per candidate (default 4096).
Returns:
    "test_pass_rate" (mean over candidates of tests passed / tests), "all_passed" (fraction of candidates
    passing every test), "per_sample" (each candidate's fraction), "status_counts", "isolation".
Examples:
    >>> test_pass_rate = evaluate.load("evaluate/metrics/test_pass_rate")
    >>> out = test_pass_rate.compute(
    ...     predictions=["def sq(x):\\n    return x * x if x < 3 else 0"],
    ...     references=[["assert sq(1) == 1", "assert sq(2) == 4", "assert sq(3) == 9", "assert sq(4) == 16"]],
    ... )
    >>> out["test_pass_rate"], out["all_passed"]
    (0.5, 0.0)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TestPassRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            license="Apache-2.0",
        )

    def _compute(
        self, predictions, references, entry_points=None, timeout=10.0, workers=None, memory_mb=4096
    ):
        if entry_points is not None and len(entry_points) != len(references):
            raise ValueError(f"{len(entry_points)} entry_points for {len(references)} problems")
        for i, tests in enumerate(references):
            if not tests:
                raise ValueError(f"problem {i} has no test statements")
        jobs = [
            ExecJob(
                program=program,
                entry_point=entry_points[i] if entry_points else "None",
                test_list=tuple(tests),
                timeout_s=float(timeout),
                task_id=str(i),
            )
            for i, (program, tests) in enumerate(zip(predictions, references, strict=True))
        ]
        with Sandbox(workers, memory_mb=int(memory_mb)) as sandbox:
            results = sandbox.run(jobs, progress=False)
            isolation = sandbox.isolation
        per_sample = [r.tests_passed / r.tests_total if r.tests_total else 0.0 for r in results]
        return {
            "test_pass_rate": sum(per_sample) / len(per_sample),
            "all_passed": sum(bool(r.passed) for r in results) / len(results),
            "per_sample": per_sample,
            "status_counts": dict(Counter(r.status for r in results)),
            "isolation": isolation,
        }
