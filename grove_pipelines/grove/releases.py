"""The Grove releases ``validate`` can target, and how their admission rules differ.

Rules change between releases (the KAI backend's queue check arrived on ``main`` after
``v0.1.0-alpha.11``), so the target is explicit (``validate --grove-version``). Every release listed
here serves and stores ``grove.io/v1alpha1`` with the vendored CRDs; Grove's newest releases promote the
API to ``grove.io/v1beta1``, and a release is only added here, with ``storage_version`` set to it, once
its CRD schema is vendored — until then ``v1beta1`` is never emitted and a ``v1beta1`` manifest is
reported as having no known schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from grove_pipelines.errors import ManifestError

__all__ = ["DEFAULT_RELEASE", "RELEASES", "GroveRelease", "grove_release"]


@dataclass(frozen=True)
class GroveRelease:
    """One targetable Grove version: its name, the API version it stores, and its release-specific rules."""

    name: str
    commit: str
    storage_version: str = "grove.io/v1alpha1"
    kai_queue_required: bool = False
    """The KAI backend rejects a PodCliqueSet without one ``kai.scheduler/queue`` (Grove PR #725)."""


RELEASES: dict[str, GroveRelease] = {
    release.name: release
    for release in (
        GroveRelease("v0.1.0-alpha.11", commit="8fa3ece93434d7c0005605b7dc4b0e23610af88b"),
        GroveRelease("v0.1.0-alpha.12-rc1", commit="v0.1.0-alpha.12-rc1"),
        GroveRelease("main", commit="fcc3b3bbbc5e6a2a797cd080bdbc6983b1ccec24", kai_queue_required=True),
    )
}
DEFAULT_RELEASE = "main"
"""The snapshot the vendored CRDs and the rules were read from (its CRDs equal ``v0.1.0-alpha.11``'s)."""


def grove_release(name: str | None = None) -> GroveRelease:
    """The release called ``name`` (default: ``DEFAULT_RELEASE``); a clear error for an unknown one."""
    key = DEFAULT_RELEASE if name is None else name.strip()
    release = RELEASES.get(key) or RELEASES.get(f"v{key}")
    if release is None:
        known = ", ".join(RELEASES)
        raise ManifestError(f"--grove-version {name}: not a known Grove release (known: {known})")
    return release
