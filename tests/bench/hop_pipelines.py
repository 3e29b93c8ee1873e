"""Trivial pipelines for the hop benchmark: the same body with one stage call and with three."""

from grove_pipelines import pipeline, stage


@stage
async def hop_a(x: int) -> int:
    return x + 1


@stage
async def hop_b(x: int) -> int:
    return x + 1


@stage
async def hop_c(x: int) -> int:
    return x + 1


@pipeline(name="one-hop")
async def one_hop(x: int) -> int:
    return await hop_a(x)


@pipeline(name="three-hops")
async def three_hops(x: int) -> int:
    return await hop_c(await hop_b(await hop_a(x)))
