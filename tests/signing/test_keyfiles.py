"""Key files and passphrases: prompt or environment variable, never argv; files are private."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_tool.errors import UsageError
from registry_tool.signing import PublicKey, SecretKey
from registry_tool.signing.keyfiles import (
    PassphraseError,
    describe_key,
    generate_key_files,
    load_public_key,
    load_secret_key,
    read_passphrase,
)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    answers: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))
    yield answers


def test_passphrase_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PASS", "pässword")
    assert read_passphrase("KEY_PASS") == "pässword".encode()


@pytest.mark.parametrize("value", [None, ""])
def test_missing_or_empty_env_passphrase(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("KEY_PASS", raising=False)
    else:
        monkeypatch.setenv("KEY_PASS", value)
    with pytest.raises(PassphraseError):
        read_passphrase("KEY_PASS")


def test_prompt_with_confirmation(prompts: list[str]) -> None:
    prompts += ["one", "one"]
    assert read_passphrase(None, confirm=True) == b"one"
    prompts += ["one", "two"]
    with pytest.raises(PassphraseError, match="do not match"):
        read_passphrase(None, confirm=True)
    prompts += [""]
    with pytest.raises(PassphraseError, match="empty"):
        read_passphrase(None)


def test_no_terminal_and_no_input_is_a_usage_error_naming_the_env_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A script or CI step: getpass finds no terminal and reads standard input to its end.
    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", eof)
    with pytest.raises(PassphraseError, match="no terminal") as caught:
        read_passphrase(None, confirm=True)
    assert "--passphrase-env" in (caught.value.fix or "") and caught.value.exit_code == 2
    assert "--unencrypted" in (caught.value.fix or "")  # generating a key: a throwaway one is an option
    with pytest.raises(PassphraseError, match="no terminal") as caught:
        read_passphrase(None)  # loading a key (sign, root sign): no such option to offer
    assert "--unencrypted" not in (caught.value.fix or "")


def test_no_terminal_warning_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    """getpass warns that it cannot hide the echo without a terminal; the tool's own error says it all."""
    import getpass
    import warnings

    def warns(prompt: str = "") -> str:
        warnings.warn("Can not control echo on the terminal.", getpass.GetPassWarning, stacklevel=1)
        return "secret"

    monkeypatch.setattr("getpass.getpass", warns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        assert read_passphrase(None) == b"secret"


def test_generate_writes_private_key_file(tmp_path: Path, fast: dict[str, int]) -> None:
    files = generate_key_files(tmp_path / "sub" / "me", b"pw", **fast)
    assert files.secret.stat().st_mode & 0o777 == 0o600
    assert PublicKey.parse(files.public.read_bytes()).key_id == files.key_id
    with pytest.raises(UsageError, match="already exists"):
        generate_key_files(tmp_path / "sub" / "me", None)


def test_encrypted_key_prompts_only_when_needed(
    tmp_path: Path, prompts: list[str], alice: SecretKey, fast: dict[str, int]
) -> None:
    (tmp_path / "plain.key").write_bytes(alice.dump(None))
    assert load_secret_key(tmp_path / "plain.key") == alice  # no prompt consumed
    (tmp_path / "enc.key").write_bytes(alice.dump(b"pw", **fast))
    prompts.append("pw")
    assert load_secret_key(tmp_path / "enc.key") == alice
    prompts.append("pw")
    assert describe_key(tmp_path / "enc.key").key_id == alice.key_id


def test_public_key_sources(tmp_path: Path, alice: SecretKey) -> None:
    (tmp_path / "a.pub").write_text(alice.public_key.to_text())
    (tmp_path / "a.key").write_bytes(alice.dump(None))
    assert load_public_key(tmp_path / "a.pub").raw == alice.public_key.raw
    assert load_public_key(alice.public_key.to_base64()).raw == alice.public_key.raw
    with pytest.raises(UsageError, match="secret key"):
        load_public_key(tmp_path / "a.key")
    with pytest.raises(UsageError, match="does not exist"):
        load_public_key(tmp_path / "missing.pub")
