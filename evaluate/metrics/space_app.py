"""The Gradio app of a metric Space: `evaluate/push_metrics.py` copies it next to the metric script as
`app.py`. Enter predictions and references as JSON, get the scores. (evaluate's own
`launch_gradio_widget` uses the gradio 3 API, which current gradio no longer has.)"""

import json
from pathlib import Path

import gradio as gr

import evaluate

HERE = Path(__file__).resolve().parent
NAME = next(p.stem for p in sorted(HERE.glob("*.py")) if p.name not in ("app.py", "space_app.py"))

EXAMPLES = {
    "pass_at_k": (
        [["def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"]],
        ["assert add(2, 3) == 5"],
        {"k": [1, 2]},
    ),
    "test_pass_rate": (
        ["def sq(x):\n    return x * x if x < 3 else 0"],
        [["assert sq(1) == 1", "assert sq(2) == 4", "assert sq(3) == 9", "assert sq(4) == 16"]],
        {},
    ),
    "codebleu": (["def f(x):\n    return x + 1"], ["def f(x):\n    return x - 1"], {}),
}

metric = evaluate.load(str(HERE / f"{NAME}.py"))


def compute(predictions: str, references: str, options: str) -> dict:
    try:
        kwargs = json.loads(options or "{}")
        return metric.compute(
            predictions=json.loads(predictions), references=json.loads(references), **kwargs
        )
    except (ValueError, TypeError) as e:
        raise gr.Error(f"{type(e).__name__}: {e}") from e


def build() -> gr.Interface:
    preds, refs, opts = EXAMPLES.get(NAME, ([], [], {}))
    readme = HERE / "README.md"
    article = readme.read_text().split("---", 2)[-1] if readme.exists() else ""
    return gr.Interface(
        fn=compute,
        inputs=[
            gr.Code(value=json.dumps(preds, indent=1), language="json", label="predictions (JSON)"),
            gr.Code(value=json.dumps(refs, indent=1), language="json", label="references (JSON)"),
            gr.Code(value=json.dumps(opts), language="json", label="options (JSON keyword arguments)"),
        ],
        outputs=gr.JSON(label=NAME),
        title=NAME,
        description=metric.description,
        article=article,
    )


if __name__ == "__main__":
    build().launch()
