"""Tied input and output embeddings: telling them apart, and keeping the tie through a peft adapter.

Tied models (SmolLM2, LLaMA-3.2-1B/3B, Qwen2.5-0.5B) have one matrix: ``lm_head`` *is*
``embed_tokens``. peft's ``modules_to_save`` would make two independent trainable copies of it, and
a merged model whose config still says ``tie_word_embeddings`` reloads with one of them silently
dropped (peft #2777). zhllama keeps the tie instead: only the input embedding's copy is saved and
the output layer is pointed at that very tensor (:func:`tie_output_to_saved_input`), when training
wraps the model (``zhllama.train.trainable.apply_lora``) and again when an adapter is loaded to be
merged (``zhllama.model.merge_lora``). Tying is a property of the model, which training uses: it
lives here, in the model layer.
"""

from __future__ import annotations


def embeddings_tied(model) -> bool:
    """True when the output layer's weight is the input embedding's tensor (and the config says so)."""
    out = model.get_output_embeddings()
    return (bool(getattr(model.config, "tie_word_embeddings", False)) and out is not None
            and out.weight is model.get_input_embeddings().weight)


def tie_output_to_saved_input(peft_model) -> bool:
    """Point the output layer of a peft model over tied embeddings at the input embedding's
    trainable (``modules_to_save``) copy; returns whether it did. A no-op for untied models, or
    when the input embedding is not in ``modules_to_save`` (then both still share the base tensor)."""
    from peft.utils.other import ModulesToSaveWrapper

    base = peft_model.get_base_model()
    if not getattr(base.config, "tie_word_embeddings", False):
        return False
    inp, out = base.get_input_embeddings(), base.get_output_embeddings()
    if out is None or not isinstance(inp, ModulesToSaveWrapper) or isinstance(out, ModulesToSaveWrapper):
        return False
    active = inp.active_adapters[0] if inp.active_adapters else "default"
    out.weight = inp.modules_to_save[active].weight
    return True
