"""One model on one GPU, served by a single vLLM clique, behind a small prompt-building stage."""

from grove_pipelines import llm, pipeline, stage

assistant = llm("assistant", model="Qwen/Qwen3-0.6B", gpus=1, max_model_len=4096)


@stage
async def build_prompt(topic: str) -> str:
    """Turn a topic into an instruction for the model."""
    return f"Write two sentences about {topic}."


@pipeline(name="chat")
async def chat(topic: str, max_tokens: int = 64) -> dict[str, str]:
    """Ask the model about a topic."""
    prompt = await build_prompt(topic)
    return {"answer": await assistant.chat(prompt, max_tokens=max_tokens, temperature=0)}
