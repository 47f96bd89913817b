"""Supervised fine-tuning with TRL: configuration, PEFT, the trainer and its artifacts."""
