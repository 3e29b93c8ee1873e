"""`grove-pipelines run --manifest` on a manifest with a multi-node vLLM group: checked, reported, refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from grove_pipelines.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def test_a_multi_node_group_is_reported_after_its_references_are_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as info:
        main(
            [
                "run",
                "--manifest",
                "pipelines/multinode_disagg.yaml",
                "--port",
                "0",
                "--model",
                str(tiny_model),
            ]
        )
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "local profile (the only differences from what deploy applies):" in err
    assert "every $(VAR) of every container of the" in err
    assert (
        "pod deepseek-r1-0-r1-p-0-r1-pl-0: not run here: a multi-node vLLM group needs one GPU node per pod"
        in err
    )
    assert err.rstrip().splitlines()[-1].startswith("error: ") and "cannot run on this machine" in err
    assert "stopped" in err
    assert (
        f"gp{os.getpid()}-"
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    )
