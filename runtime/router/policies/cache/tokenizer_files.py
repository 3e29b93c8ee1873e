"""A model directory's tokenizer, loaded from its files with ``tokenizers`` alone: no transformers, no torch.

The router sidecar's image has neither (vLLM's image has them), and loading transformers'
``AutoTokenizer`` imports torch: seconds of start and hundreds of MiB for one tokenizer. A directory
with ``tokenizer.json`` (the serialization transformers itself loads for a fast tokenizer) and a
generic tokenizer class is loaded here exactly as transformers would set it up:

* the backend is ``tokenizer.json`` as is (transformers drops the config's ``add_bos_token`` and
  ``add_eos_token`` when that file exists); a file without a post-processor gets the plain one
  transformers' ``update_post_processor`` sets with both flags off;
* the chat template is ``chat_template.jinja``, else the config's ``chat_template`` (a named list:
  the ``default`` one), rendered by ``chat_template.py`` with the config's named special tokens; a
  request with tools gets the template named ``tool_use`` where there is one
  (``additional_chat_templates/tool_use.jinja`` or the config's named list), as transformers'
  ``get_chat_template`` picks it; a gpt-oss model has none here (vLLM renders its chats with
  ``openai_harmony``, not the template), so its chats are routed by estimate.

Anything else returns None and the caller loads transformers: a tokenizer class of a model family
(which may build its pipeline in code), a named special token the vocabulary lacks (transformers
would add it) or that ``special_tokens_map.json`` names otherwise, ``split_special_tokens``, named
templates without a default, or a Mistral model (transformers patches its regex).
``tests/runtime/router/test_tokenizer_files.py`` checks the result against transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.router.policies.cache.chat_template import ChatTemplate

__all__ = ["LocalTokenizer", "load_local"]

_GENERIC_CLASSES = {None, "TokenizersBackend", "PreTrainedTokenizerFast"}
_NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class LocalTokenizer:
    """A ``tokenizers.Tokenizer`` and the chat templates, as transformers would use them."""

    def __init__(
        self, backend: Any, template: ChatTemplate | None, tool_template: ChatTemplate | None = None
    ) -> None:
        self.backend = backend
        self.template = template
        #: The template for a request with tools (the ``tool_use`` one, else the same).
        self.tool_template = tool_template or template


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None


def _token_text(value: Any) -> str | None:
    """A special token as the config writes it: a string, or an added-token object with ``content``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _template_sources(folder: Path, config: dict[str, Any]) -> dict[str, str]:
    """The templates by name (``default`` the single one): the files win over the config's entry."""
    named: dict[str, str] = {}
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        named["default"] = jinja.read_text(encoding="utf-8")
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        for path in sorted(extra.glob("*.jinja")):
            named[path.name.removesuffix(".jinja")] = path.read_text(encoding="utf-8")
    if named:
        return named
    raw: Any = config.get("chat_template")
    if isinstance(raw, list):
        entries = (t for t in raw if isinstance(t, dict))
        return {
            t["name"]: t["template"]
            for t in entries
            if isinstance(t.get("name"), str) and isinstance(t.get("template"), str)
        }
    return {"default": raw} if isinstance(raw, str) else {}


def load_local(source: str) -> LocalTokenizer | None:
    """The tokenizer of the model directory ``source``, or None when only transformers can load it faithfully."""
    folder = Path(source)
    if not (folder / "tokenizer.json").is_file():
        return None
    config = _json(folder / "tokenizer_config.json") or {}
    model_type = str((_json(folder / "config.json") or {}).get("model_type", ""))
    if config.get("tokenizer_class") not in _GENERIC_CLASSES or config.get("split_special_tokens"):
        return None
    if "mistral" in model_type or "mixtral" in model_type:
        return None
    from tokenizers import Tokenizer, processors

    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    specials = {name: text for name in _NAMED_SPECIALS if (text := _token_text(config.get(name))) is not None}
    legacy = _json(folder / "special_tokens_map.json") or {}
    for name in _NAMED_SPECIALS:  # the legacy file fills gaps; where the two disagree, transformers decides
        text = _token_text(legacy.get(name))
        if text is not None and specials.setdefault(name, text) != text:
            return None
    extra = config.get("extra_special_tokens", config.get("additional_special_tokens", []))
    extra_texts = [_token_text(t) for t in extra] if isinstance(extra, list) else [None]
    if any(t is None or backend.token_to_id(t) is None for t in [*specials.values(), *extra_texts]):
        return None  # transformers would add the missing token to the vocabulary
    if backend.post_processor is None:  # transformers sets one from its BOS/EOS flags, both off here
        backend.post_processor = processors.TemplateProcessing(
            single="$A:0", pair="$A:0 $B:1", special_tokens=[]
        )
    if (folder / "additional_chat_templates").is_dir() and not (folder / "chat_template.jinja").is_file():
        return None  # named templates without a default: transformers' rules decide
    if model_type == "gpt_oss":  # vLLM renders its chats with openai_harmony, never the template
        return LocalTokenizer(backend, None)
    sources = _template_sources(folder, config)
    default, tool_use = sources.get("default"), sources.get("tool_use")
    template = ChatTemplate(default, specials) if default is not None else None
    tool_template = ChatTemplate(tool_use, specials) if tool_use is not None else None
    return LocalTokenizer(backend, template, tool_template)
