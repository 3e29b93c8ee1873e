"""What the policies know of each worker's prefix cache, shared by the prefix scorer and the
prefill/decode decider: the prompt's chained block hashes (``block_hashes``), the estimate of what was
routed where (``prefix_index``) corrected by the workers' own counters (``cache_feedback``), and the
precise state from their KV-cache events (``precise_cache`` over ``kv_index``, looked up with the
prompt's own tokens from ``prompt_tokens``, which reuses a recent prompt's tokens when a prompt
extends it: ``token_prefix_cache``; a chat is rendered with the model's template from
``tokenizer_files`` and ``chat_template``, after ``vllm_chat`` normalizes it as vLLM does for a
template of the ``content_format`` vLLM detects)."""
