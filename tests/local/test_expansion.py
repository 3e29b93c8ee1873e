"""``$(VAR)`` expansion: the cases of Kubernetes' own table (``third_party/forked/golang/expansion/expand_test.go``)."""

from __future__ import annotations

import pytest

from grove_pipelines.local.expansion import expand, references, resolve_env, unresolved

CONTEXT = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}

CASES = [
    ("$(VAR_A)", "A"),
    ("$(VAR_A)-$(VAR_A)", "A-A"),
    ("___$(VAR_B)___", "___B___"),
    ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
    ("f000-$$VAR_A", "f000-$VAR_A"),
    ("foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("$(VAR_REF)", "$(VAR_A)"),
    ("foo$(VAR_EMPTY)bar", "foobar"),
    ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
    ("$?_boo_$!", "$?_boo_$!"),
    ("$VAR_A", "$VAR_A"),
    ("$(VAR_DNE)", "$(VAR_DNE)"),
    ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
    ("$$$$$$$(VAR_A)", "$$$A"),
    ("${VAR_A}", "${VAR_A}"),
    ("$(VAR_B)_______$(A", "B_______$(A"),
    ("$(VAR_C)_______$(", "C_______$("),
    ("$(VAR_A)foobarzab$", "Afoobarzab$"),
    ("--$($($($($--", "--$($($($($--"),
    ("$(foo$$var)", "$(foo$$var)"),
    # shell arithmetic in a `sh -c` line survives for the shell (the compiled multi-node workers rely on it)
    ("--node-rank $((GROVE_PCLQ_POD_INDEX + 1))", "--node-rank $((GROVE_PCLQ_POD_INDEX + 1))"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_expansion_matches_the_kubelet(text: str, expected: str) -> None:
    assert expand(text, CONTEXT) == expected


def test_env_resolves_in_order_against_earlier_entries_only() -> None:
    env = resolve_env(
        [
            {"name": "LATER_REF", "value": "$(FOO)-x"},
            {"name": "FOO", "value": "bar"},
            {"name": "ZOO", "value": "$(FOO)-1"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "BLU", "value": "$(ZOO)-2@$(IP)"},
        ],
        lambda source: "10.0.0.7",
    )
    assert env == {
        "LATER_REF": "$(FOO)-x",
        "FOO": "bar",
        "ZOO": "bar-1",
        "IP": "10.0.0.7",
        "BLU": "bar-1-2@10.0.0.7",
    }


def test_references_skip_escapes_and_unresolved_names_the_missing() -> None:
    assert references("$(A)-$$(B)-$$$(C)-$((D + 1))") == ["A", "C"]
    assert unresolved(["$(A)", "x$(B)", "$$(C)"], {"A": "1"}) == ["B"]
