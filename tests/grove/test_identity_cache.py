"""``IdentityCache``: one build per source object and key; an equal but different object is built anew."""

from __future__ import annotations

from grove_pipelines.grove.identity_cache import IdentityCache


def test_built_once_per_object_and_key() -> None:
    cache: IdentityCache[int] = IdentityCache(size=2)
    builds: list[str] = []
    source, twin = {"a": 1}, {"a": 1}

    def build(name: str) -> int:
        builds.append(name)
        return len(builds)

    assert cache.get(source, "v1", lambda: build("source/v1")) == 1
    assert cache.get(source, "v1", lambda: build("again")) == 1
    assert cache.get(twin, "v1", lambda: build("twin/v1")) == 2  # equal content, another object
    assert cache.get(source, "v2", lambda: build("source/v2")) == 3  # bounded: the oldest entry went
    assert [id(s) for s, _ in cache.values()] == [id(twin), id(source)]
    assert cache.get(source, "v1", lambda: build("source/v1 rebuilt")) == 4
    assert builds == ["source/v1", "twin/v1", "source/v2", "source/v1 rebuilt"]
