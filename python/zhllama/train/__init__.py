"""Training: two-stage pretraining and LoRA SFT on Hugging Face Trainer (+ DeepSpeed)."""
