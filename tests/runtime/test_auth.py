"""runtime/auth.py: the bearer-key check the router and the pipeline server share. It fails closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.auth import ApiKeys, AuthConfigError, bearer_token


def test_keys_from_flags_env_and_file_are_all_accepted(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# mounted from a Secret\nfile-key-1\n\nfile-key-2  # rotated in\n")
    keys = ApiKeys.load(["flag-key"], env="KEYS", file=key_file, environ={"KEYS": "env-a, env-b"})
    assert len(keys) == 5 and keys.enabled
    for key in ("flag-key", "env-a", "env-b", "file-key-1", "file-key-2"):
        assert keys.check(f"Bearer {key}") and keys.check(f"bearer {key}".encode())
    assert not keys.check("Bearer file-key-3") and not keys.check("Basic flag-key") and not keys.check(None)


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "bearer    ", ""])
def test_an_empty_token_never_matches(header: str) -> None:
    assert bearer_token(header) is None
    assert not ApiKeys(["k"]).check(header)


def test_no_keys_configured_means_auth_is_off_but_an_empty_key_is_an_error(tmp_path: Path) -> None:
    assert not ApiKeys.load([], env="UNSET", environ={}).enabled
    for bad in ([""], [" "], ["a b"], ["a,b"], ["ключ"]):
        with pytest.raises(AuthConfigError):
            ApiKeys(bad)
    with pytest.raises(AuthConfigError, match=r"\$KEYS is set but holds no API key"):
        ApiKeys.load(env="KEYS", environ={"KEYS": " , "})
    empty = tmp_path / "empty"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(AuthConfigError, match="holds no key"):
        ApiKeys.load(file=empty)


def test_check_headers_reads_the_asgi_header_list() -> None:
    keys = ApiKeys(["s3cret"])
    assert keys.check_headers([(b"host", b"x"), (b"authorization", b"Bearer s3cret")])
    assert not keys.check_headers([(b"host", b"x")])
    assert not keys.check_headers([(b"authorization", b"Bearer wrong")])
