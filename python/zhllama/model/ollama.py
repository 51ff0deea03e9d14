"""The Ollama ``Modelfile`` written beside an exported GGUF.

    FROM ./model-q4_k_m.gguf
    TEMPLATE \"\"\"{{ if .System }}<|im_start|>system ... {{ .Prompt }}<|im_end|> ...{{ .Response }}<|im_end|>
    \"\"\"
    PARAMETER stop "<|im_end|>"
    PARAMETER temperature 0.2 ...

Ollama's templates are Go templates, the model directory's chat template is Jinja; no general
translation exists. The Go template is therefore *derived from what the Jinja template renders*:
the Jinja template is rendered with marker strings in place of a system message, a user message
and a reply, and the text around the markers becomes the literal text around ``{{ .System }}``,
``{{ .Prompt }}`` and ``{{ .Response }}``. For one system message (or none) and one user
message, the Go template then renders byte for byte what ``apply_chat_template(...,
add_generation_prompt=True)`` renders (less the BOS text, which llama.cpp and Ollama add
themselves). Multi-turn chats are rendered by Ollama one turn after the other through the same
template. A template whose rendering does not decompose this way (the user's text transformed,
a prompt that depends on more than the one message) gets no TEMPLATE line, and the Modelfile
says why in a comment; so does a directory without a chat template.

Sampling: the report's (temperature 0.2, top-k 40, top-p 0.9, repeat penalty 1.3); stops: the
texts of the model's stop tokens (EOS, end-of-turn, generation_config's eos ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from zhllama.model.gguf_vocab import CONTROL, USER_DEFINED, GGUFVocab

SAMPLING = (("temperature", "0.2"), ("top_k", "40"), ("top_p", "0.9"), ("repeat_penalty", "1.3"))
SYSTEM, USER, REPLY = "\x02SYSTEM\x03", "\x02USER\x03", "\x02REPLY\x03"


def modelfile_path(gguf: Path) -> Path:
    return gguf.with_suffix(".Modelfile")


@dataclass
class GoTemplate:
    """A chat template as Ollama's Go template, or None with the reason."""

    template: Optional[str]
    note: str


def render(template: str, messages: list[dict[str, str]], generation_prompt: bool, specials: dict[str, str]) -> str:
    """The Jinja chat template rendered as transformers renders it (sandboxed, trim_blocks, lstrip_blocks)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=generation_prompt, **specials)


def _split(text: str, marker: str) -> Optional[tuple[str, str]]:
    return (text.split(marker)[0], text.split(marker)[1]) if text.count(marker) == 1 else None


def _go_literal(text: str) -> str:
    """Text as a literal part of a Go template (``{{`` would open an action)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(template: str, specials: dict[str, str], strip_prefix: str = "") -> GoTemplate:
    """Derive the Go template (see the module docstring); ``strip_prefix``: the BOS text the engine adds."""
    try:
        plain = _split(render(template, [{"role": "user", "content": USER}], True, specials), USER)
    except Exception as e:  # a template error is a reason to write no TEMPLATE, never a crash
        return GoTemplate(None, f"the chat template does not render one user message ({type(e).__name__}: {e})")
    if plain is None:
        return GoTemplate(None, "the chat template does not render the user's text once and unchanged")
    prefix, after = plain
    if strip_prefix and prefix.startswith(strip_prefix):
        prefix = prefix[len(strip_prefix):]
    system: Optional[tuple[str, str]] = None
    try:
        text = render(template, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}], True,
                      specials)
        head = _split(text, SYSTEM)
        if head is not None and (tail := _split(head[1], USER)) is not None and tail[1] == after:
            a = head[0][len(strip_prefix):] if strip_prefix and head[0].startswith(strip_prefix) else head[0]
            system = (a, tail[0])
    except Exception:  # templates that refuse a system message: the TEMPLATE has no {{ .System }}
        system = None
    end = ""
    try:
        turn = render(template, [{"role": "user", "content": USER}, {"role": "assistant", "content": REPLY}], False,
                      specials)
        reply = _split(turn, REPLY)
        if reply is not None and reply[0].endswith(USER + after):
            end = reply[1]
    except Exception:
        end = ""
    out = ""
    if system is not None:
        out += "{{ if .System }}" + _go_literal(system[0]) + "{{ .System }}" + _go_literal(system[1]) + "{{ else }}"
        out += _go_literal(prefix) + "{{ end }}"
    else:
        out += _go_literal(prefix)
    out += "{{ .Prompt }}" + _go_literal(after) + "{{ .Response }}" + _go_literal(end)
    note = "derived from chat_template.jinja: renders one (system +) user turn byte for byte as the Jinja template"
    if system is None:
        note += "; the template takes no system message"
    return GoTemplate(out, note)


def stop_texts(vocab: GGUFVocab) -> list[str]:
    """The texts of the stop tokens that have a text Ollama can match (control and user-defined tokens)."""
    return [vocab.tokens[i] for i in vocab.stop_ids if vocab.types[i] in (CONTROL, USER_DEFINED)]


def specials_of(vocab: GGUFVocab) -> dict[str, Any]:
    def text(i: Optional[int]) -> str:
        return vocab.tokens[i] if i is not None else ""

    return {"bos_token": text(vocab.bos_id), "eos_token": text(vocab.eos_id), "pad_token": text(vocab.pad_id),
            "unk_token": text(vocab.unk_id)}


def modelfile_text(gguf: Path, vocab: GGUFVocab) -> str:
    lines = [f"# Ollama Modelfile for {gguf.name}, written by zhllama export-gguf.",
             f"#   ollama create {gguf.stem} -f {modelfile_path(gguf).name}", f"FROM ./{gguf.name}"]
    if vocab.chat_template is None:
        lines.insert(2, "# No TEMPLATE: the model directory has no chat template (chat_template.jinja); Ollama "
                        "sends the raw prompt.")
    else:
        specials = specials_of(vocab)
        go = go_template(vocab.chat_template, specials, specials["bos_token"] if vocab.add_bos else "")
        if go.template is None or '"""' in go.template:
            lines.insert(2, f"# No TEMPLATE: {go.note if go.template is None else 'the template holds three quotes'}"
                            "; the GGUF carries the Jinja template (tokenizer.chat_template).")
        else:
            lines.insert(2, f"# TEMPLATE {go.note}.")
            lines.append(f'TEMPLATE """{go.template}"""')
    for stop in stop_texts(vocab):
        lines.append(f"PARAMETER stop {quote(stop)}")
    lines += [f"PARAMETER {k} {v}" for k, v in SAMPLING]
    return "\n".join(lines) + "\n"


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_modelfile(gguf: Path, vocab: GGUFVocab) -> Path:
    import os

    path = modelfile_path(gguf)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(modelfile_text(gguf, vocab), encoding="utf-8")
    os.replace(tmp, path)
    return path
