"""One prompt format from SFT to server: the chat template ``sft`` trains on is the one it ships.

``sft --template alpaca`` (the report's) trains on the Alpaca prompt and ships
:func:`alpaca_template`, a Jinja chat template that renders a user turn as that prompt, byte for
byte, with the tokenizer's BOS before it and its EOS after each answer.
``sft --template chat`` renders multi-turn ``messages`` records (OpenAI ``{"role", "content"}``
or ShareGPT ``{"from", "value"}``) with the base tokenizer's own chat template and ships it
unchanged. Either way ``chat_template.jinja`` in the output directory, which merge-lora, the GGUF
export, vLLM, SGLang, TGI and Ollama read, prompts the model as it was trained.

Rendering is transformers' own (``render_jinja_template``: the sandbox and options that
``apply_chat_template`` uses), so the training text equals what a server renders.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

from zhllama.prompt import PROMPT
from zhllama.tokenizer.directory import CHAT_TEMPLATE_FILE, CONFIG_FILE, read_json_object

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}


def _literal(text: str) -> str:
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"


def alpaca_template(bos: Optional[str], eos: Optional[str]) -> str:
    """The Alpaca prompt as a chat template: ``bos`` + PROMPT(user content) + answer + ``eos``; a
    system message is ignored (the Alpaca preamble is fixed). ``bos``/``eos`` are the token texts
    the training added (None: the tokenizer adds none)."""
    head, tail = PROMPT.split("{instruction}")
    return ((_literal(bos) if bos else "") + "{%- for message in messages -%}"
            "{%- if message['role'] == 'user' -%}" + _literal(head) + "{{ message['content'] }}" + _literal(tail) +
            "{%- elif message['role'] == 'assistant' -%}{{ message['content'] }}" + (_literal(eos) if eos else "") +
            "{%- endif -%}{%- endfor -%}\n")


def alpaca_user_content(instruction: str, input: str = "") -> str:
    """The user turn of an Alpaca record: the instruction, a non-empty input on the next line."""
    return instruction + "\n" + input if input else instruction


def read_chat_template(directory: str | Path) -> Optional[str]:
    """``chat_template.jinja``, else ``tokenizer_config.json``'s ``chat_template`` (the
    ``default`` one of a list); None when the directory (or a file's directory) has none."""
    d = Path(directory)
    d = d if d.is_dir() else d.parent
    if (d / CHAT_TEMPLATE_FILE).is_file():
        return (d / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    template = read_json_object(d / CONFIG_FILE).get("chat_template")
    if isinstance(template, list):
        template = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}.get("default")
    return template if isinstance(template, str) and template else None


def render(template: str, messages: list[dict[str, str]], add_generation_prompt: bool = False,
           special: Optional[dict[str, Optional[str]]] = None) -> str:
    """``apply_chat_template(messages, tokenize=False)`` with transformers' renderer; ``special``:
    the token texts the template reads (``bos_token``, ``eos_token``)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    kwargs: dict[str, Any] = dict(special or {})
    out: Any = render_jinja_template([messages], chat_template=template, add_generation_prompt=add_generation_prompt,
                                     **kwargs)
    return out[0][0]


def conversation(where: str, record: object) -> list[dict[str, str]]:
    """The messages of a chat record: ``{"messages": [{"role", "content"}]}`` (OpenAI) or
    ``{"conversations": [{"from", "value"}]}`` (ShareGPT), with at least one assistant turn."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: the record is a {type(record).__name__}, not an object with 'messages'")
    turns = record.get("messages", record.get("conversations"))
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: no 'messages' (OpenAI: role/content) or 'conversations' (ShareGPT: from/value) "
                         f"list; Alpaca records (instruction/input/output) train with --template alpaca")
    out = []
    for k, turn in enumerate(turns):
        role = turn.get("role", SHAREGPT_ROLES.get(str(turn.get("from")))) if isinstance(turn, dict) else None
        content = turn.get("content", turn.get("value")) if isinstance(turn, dict) else None
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError(f"{where}: turn {k} is not a message with a role (system, user, assistant; ShareGPT "
                             f"human, gpt, system) and string content: {json.dumps(turn, ensure_ascii=False)[:80]}")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"{where}: no assistant turn to learn")
    return out


def chat_segments(template: str, messages: list[dict[str, str]], where: str = "",
                  special: Optional[dict[str, Optional[str]]] = None) -> list[tuple[str, bool]]:
    """The rendered conversation cut into ``(text, learned)`` segments: each assistant turn is
    learned from after the generation prompt through its end-of-turn token (trailing whitespace
    stays unlearned, so a cut example still ends on the end-of-turn token); everything else is
    context. The segments concatenate to ``render(template, messages)``."""
    segments: list[tuple[str, bool]] = []
    done = ""
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render(template, messages[:k], add_generation_prompt=True, special=special)
        full = render(template, messages[:k + 1], special=special)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError(f"{where}: the chat template does not render turn {k} as a continuation of the turns "
                             f"before it; it cannot be trained turn by turn (use --template alpaca)")
        answer = full[len(prompt):]
        kept = answer.rstrip()
        segments += [(prompt[len(done):], False), (kept, True)]
        done = prompt + kept
    whole = render(template, messages, special=special)
    if not whole.startswith(done):
        raise ValueError(f"{where}: the chat template renders the whole conversation differently from its turns")
    segments.append((whole[len(done):], False))
    return [(t, learned) for t, learned in segments if t]


def special_tokens(tokenizer: Any) -> dict[str, Optional[str]]:
    """The token texts a template reads (``bos_token``, ``eos_token``) from zhllama's tokenizer."""
    return {"bos_token": None if tokenizer.bos_id is None else tokenizer.id_to_piece(tokenizer.bos_id),
            "eos_token": None if tokenizer.eos_id is None else tokenizer.id_to_piece(tokenizer.eos_id)}


def encode_rendered(tokenizer: Any, text: str) -> list[int]:
    """Ids of a rendered template as HF tokenizers gives them (what a server sends the model): the
    special tokens' texts (``<s>``, ``</s>``, ``<unk>``, added tokens such as ``[PAD]``) become
    their ids, and each stretch between them is encoded on its own (a SentencePiece dummy prefix
    each, as the ``tokenizer.json`` normalizer does). sentencepiece itself reads ``<s>`` in text as
    characters, so SentencePiece tokenizers are split here; byte-level ones parse their added tokens."""
    if tokenizer.is_byte_level:
        return list(tokenizer.encode(text, parse_special=True))
    specials = _sentencepiece_specials(tokenizer)
    ids: list[int] = []
    for part in specials[0].split(text) if specials[0] is not None else [text]:
        if part in specials[1]:
            ids.append(specials[1][part])
        elif part:
            ids += tokenizer.encode(part)
    return ids


def _sentencepiece_specials(tokenizer: Any) -> tuple[Optional[re.Pattern[str]], dict[str, int]]:
    found = {tokenizer.id_to_piece(i): i for i in (tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
             if i is not None}
    found.update({text: i for i, text in tokenizer.added_tokens.items()})
    if not found:
        return None, found
    return re.compile("(" + "|".join(map(re.escape, sorted(found, key=len, reverse=True))) + ")"), found
