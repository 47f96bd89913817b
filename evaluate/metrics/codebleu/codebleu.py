"""CodeBLEU (Ren et al., 2020) through the `codebleu` package, with its four components."""

import datasets
from codebleu import calc_codebleu

import evaluate

_CITATION = """\
@misc{ren2020codebleu,
  title={CodeBLEU: a Method for Automatic Evaluation of Code Synthesis},
  author={Shuo Ren and Daya Guo and Shuai Lu and Long Zhou and Shujie Liu and Duyu Tang and Neel Sundaresan and Ming Zhou and Ambrosio Blanco and Shuai Ma},
  year={2020},
  eprint={2009.10297},
  archivePrefix={arXiv},
}
"""

_DESCRIPTION = """\
CodeBLEU scores generated code against reference code as a weighted sum of four matches: n-gram match
(BLEU), keyword-weighted n-gram match, syntax match (shared AST subtrees, via tree-sitter) and data-flow
match. It is computed at corpus level by the `codebleu` package (0.7.0, with tree-sitter-python 0.21.0);
identical code scores 1.0. Note that this package counts the data-flow term as 1 whenever the data-flow
match is 0 (for example when the reference has no data flow); the components are returned so that the
composite can be recomputed without that rule.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated programs.
    references: list of reference programs, one per prediction (a string, or a list of strings when a
        prediction has several references).
    lang: the programming language (default "python"; others need their tree-sitter grammar installed).
    weights: the weights of the four components (default 0.25 each).
Returns:
    "codebleu", "ngram_match_score", "weighted_ngram_match_score", "syntax_match_score",
    "dataflow_match_score", all in [0, 1].
Examples:
    >>> codebleu = evaluate.load("evaluate/metrics/codebleu")
    >>> out = codebleu.compute(predictions=["def f(x):\\n    return x + 1"], references=["def f(x):\\n    return x + 1"])
    >>> round(out["codebleu"], 4)
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CodeBLEU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Value("string"),
                    }
                ),
            ],
            codebase_urls=["https://github.com/k4black/codebleu"],
            reference_urls=["https://arxiv.org/abs/2009.10297"],
            license="MIT",
        )

    def _compute(self, predictions, references, lang="python", weights=(0.25, 0.25, 0.25, 0.25)):
        refs = [r if isinstance(r, list) else [r] for r in references]
        scores = calc_codebleu(refs, predictions, lang=lang, weights=tuple(weights))
        return {key: float(value) for key, value in scores.items()}
