"""Golden manifests: every ``pipelines/<name>.py`` compiles to the committed ``pipelines/<name>.yaml``.

Both sides are round-tripped through the models before comparing. Regenerate after an intended
change with ``GROVE_PIPELINES_REGENERATE=1 .venv/bin/python -m pytest tests/grove/test_goldens.py``
(CI never sets it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from grove_pipelines import yamlio
from grove_pipelines.compile import compile_ref
from grove_pipelines.grove import kube_objects
from grove_pipelines.grove.kube_model import KubeModel, to_dict
from grove_pipelines.grove.podcliqueset import PodCliqueSet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "pipelines").glob("*.py"))
REGENERATE = os.environ.get("GROVE_PIPELINES_REGENERATE") == "1"
MODELS: dict[str, type[KubeModel]] = {
    "PodCliqueSet": PodCliqueSet,
    "Service": kube_objects.Service,
    "ServiceAccount": kube_objects.ServiceAccount,
    "Role": kube_objects.Role,
    "RoleBinding": kube_objects.RoleBinding,
    "NetworkPolicy": kube_objects.NetworkPolicy,
}


def _round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    return to_dict(MODELS[doc["kind"]].model_validate(doc))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    ref = f"pipelines/{example.name}"
    docs = compile_ref(ref)
    golden = example.with_suffix(".yaml")
    if REGENERATE or not golden.exists():
        header = f"# grove-pipelines compile {ref}  (golden: regenerate with GROVE_PIPELINES_REGENERATE=1)\n"
        golden.write_text(header + yamlio.dump_all(docs), encoding="utf-8")
        if not REGENERATE:
            pytest.fail(f"{golden.name} did not exist and was written; review and commit it")
    expected = [_round_trip(doc) for doc in yamlio.load_all_file(golden)]
    assert [_round_trip(doc) for doc in docs] == expected
