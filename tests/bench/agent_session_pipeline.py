"""The pipeline of the routing benchmark's pipeline-level comparison: one agent session as one run.

Each turn is one chat call with the conversation so far; the pipeline server gives every call of the
run the run's session (``x-session-id``), so a session-aware router keeps the run on one worker.
"""

from grove_pipelines import llm, pipeline

agent = llm("agent", model="tiny", served_model_name="tiny")


@pipeline(name="agent-session")
async def agent_session(turns: list[list[dict[str, str]]], max_tokens: int = 8) -> int:
    """Send the turns in order; the number of characters the agent answered."""
    said = 0
    for messages in turns:
        said += len(await agent.chat(messages, max_tokens=max_tokens, temperature=0, ignore_eos=True))
    return said
