"""Templates shipped as package data: model and dataset cards (cards/), SFT recipes (recipes/<model>/<method>.yaml)
and study plans (plans/<preset>.yaml). `model_cards/`, `sft/recipes/` and `experiments/plans/` in a checkout are
links to these folders, so the files users read and edit are the ones a pip-installed letitcode loads."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
CARDS = ROOT / "cards"
RECIPES = ROOT / "recipes"
PLANS = ROOT / "plans"
