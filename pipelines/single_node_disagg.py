"""Disaggregated serving on single-GPU nodes: two prefill workers and one decode worker.

The KV cache moves from prefill to decode over vLLM's NixlConnector; the router sidecar in the
pipeline server's pod runs the two legs of every request.
"""

from grove_pipelines import PD, Role, llm, pipeline

chat_model = llm(
    "chat",
    model="meta-llama/Llama-3.1-8B-Instruct",
    gpus=1,
    max_model_len=8192,
    disaggregated=PD(prefill=Role(replicas=2), decode=Role(replicas=1)),
)


@pipeline(name="pd-chat")
async def pd_chat(question: str, max_tokens: int = 128) -> dict[str, str]:
    """Answer a question through the disaggregated model."""
    return {"answer": await chat_model.chat(question, max_tokens=max_tokens)}
