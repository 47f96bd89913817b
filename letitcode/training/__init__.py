"""Supervised fine-tuning with TRL: configuration, PEFT, the trainer and its artifacts.

- `config`: the argument classes, METHODS, per-method defaults, recipes, `parse_args`, `describe` (no torch/TRL)
- `data`: the SFT data builder (columns, completion format, split by problem, decontamination)
- `prepare`: that data as SFTTrainer gets it (overlong prompts dropped, bounded validation)
- `peft`: PEFT and quantization configs, load precision and placement, parameter counts, merging
- `resume`: the training configuration's fingerprint and the (re)run plan of an output folder
- `trainer`: `train()`, one SFT job end to end
- `artifacts`: manifest, loss curves and plot, model card, push to the Hub
- `eval_after`: `--eval_after`'s train/held-out pass@1 (overfitting.json)
"""
