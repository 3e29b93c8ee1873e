"""Grove's validating webhook, offline: its admission rules on a PodCliqueSet manifest, create and update.

``admit`` runs them all; each module holds the rules on one part of the set (see ``admit``'s docstring).
"""

from __future__ import annotations

from grove_pipelines.grove.webhook.admit import admit, check_podcliqueset

__all__ = ["admit", "check_podcliqueset"]
