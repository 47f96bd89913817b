"""The Hugging Face Hub: the one Hub-id parser and publishing."""
