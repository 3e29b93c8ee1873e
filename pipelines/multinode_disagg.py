"""A DeepSeek-R1-sized model: multi-node prefill and decode groups, gang-scheduled by KAI.

Each role is a PodCliqueScalingGroup of a leader and workers (2 nodes x 8 GPUs for prefill, 4 nodes
x 8 GPUs for decode, expert parallel); Grove starts workers after their leader and schedules each
group replica as one gang.
"""

from grove_pipelines import PD, Role, llm, pipeline

r1 = llm(
    "r1",
    model="deepseek-ai/DeepSeek-R1",
    gpus=8,
    max_model_len=32768,
    vllm_args=("--enable-expert-parallel", "--trust-remote-code"),
    disaggregated=PD(
        prefill=Role(replicas=2, nodes=2, tensor_parallel=16),
        decode=Role(replicas=1, nodes=4, tensor_parallel=32),
    ),
    resources={"memory": "1000Gi"},
)


@pipeline(name="deepseek-r1", scheduler="kai-scheduler", queue="inference", termination_delay="15m")
async def deepseek(question: str, max_tokens: int = 1024) -> dict[str, str]:
    """Reason about a question with DeepSeek-R1."""
    return {"answer": await r1.chat(question, max_tokens=max_tokens)}
