"""Model surgery: growing a LLaMA-family model's embeddings to a merged vocabulary."""

from zhllama.model.resize import check_extends, resize_model

__all__ = ["check_extends", "resize_model"]
