"""Fine-tune a code model on LeetCode problems with TRL's SFTTrainer (LoRA, QLoRA, DoRA, IA³ or full).

    accelerate launch sft/train.py --model google/gemma-7b --method qlora   # sft/recipes/gemma-7b/qlora.yaml
    python sft/train.py --model embedded --method lora                      # CPU, minutes
    python sft/train.py --config sft/recipes/embedded/lora.yaml --max_steps 50 --eval_after
    python sft/train.py --model ORG/OTHER --recipe none                     # generic per-method defaults

Options: every `trl.SFTConfig` and `trl.ModelConfig` field, plus LetItCode's own (`--help`).
Precedence: defaults < per-method defaults < YAML recipe (`--config`, else sft/recipes/<model>/<method>.yaml)
< command line. Rerunning the same command with the same --output_dir resumes a checkpoint of the same training
configuration; a finished one trains zero steps; another configuration there needs --overwrite.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from letitcode.training.config import parse_args
    from letitcode.training.trainer import train

    script_args, sft_args, model_args = parse_args(argv)
    if script_args.dry_run:
        import json

        from letitcode.training.config import describe

        print(json.dumps(describe(script_args, sft_args, model_args), indent=2, default=str))
        return 0
    manifest = train(script_args, sft_args, model_args)
    if manifest.get("already_trained"):
        print(f"already trained: {manifest['output_dir']} (step {manifest['global_step']}); nothing to do")
        return 0
    if manifest:
        out = manifest["output_dir"]
        losses = manifest["losses"]
        print(
            f"done: {manifest['method']} on {manifest['model']['hub_id'] or manifest['model']['path']}, "
            f"step {manifest['global_step']}, train loss {losses['final_train_loss']}, "
            f"validation loss {losses['final_eval_loss']} -> {out} (loss.png, manifest.json, README.md)"
        )
        if manifest.get("overfitting"):
            o = manifest["overfitting"]
            print(
                f"pass@1: train {o['train_pass@1']}, held-out {o['heldout_pass@1']} -> {out}/overfitting.json"
            )
        for what, url in manifest.get("pushed", {}).items():
            print(f"pushed {what}: {url}")
    return 0
