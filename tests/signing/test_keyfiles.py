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
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A controlling terminal to prompt on (the tests run without one)."""
    monkeypatch.setattr("registry_tool.signing.keyfiles.has_terminal", lambda: True)


@pytest.fixture
def prompts(monkeypatch: pytest.MonkeyPatch, terminal: None) -> Iterator[list[str]]:
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


def test_no_terminal_is_a_usage_error_naming_the_env_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """A script or CI step: getpass would read standard input (and hang while it stays open)."""
    monkeypatch.setattr("registry_tool.signing.keyfiles.has_terminal", lambda: False)

    def never(prompt: str = "") -> str:
        raise AssertionError("standard input was read")

    monkeypatch.setattr("getpass.getpass", never)
    with pytest.raises(PassphraseError, match="no terminal") as caught:
        read_passphrase(None, confirm=True)
    assert "--passphrase-env" in (caught.value.fix or "") and caught.value.exit_code == 2
    assert "--unencrypted" in (caught.value.fix or "")  # generating a key: a throwaway one is an option
    with pytest.raises(PassphraseError, match="no terminal") as caught:
        read_passphrase(None)  # loading a key (sign, root sign): no such option to offer
    assert "--unencrypted" not in (caught.value.fix or "")


def test_end_of_input_at_the_prompt_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, terminal: None) -> None:
    def eof(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", eof)
    with pytest.raises(PassphraseError, match="input ended") as caught:
        read_passphrase(None)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("stdin", ["open", "piped"])
def test_the_key_command_without_a_terminal_stops_with_exit_2(tmp_path: Path, stdin: str) -> None:
    """Run with no controlling terminal (a new session): an open standard input hung until killed,
    a piped passphrase was taken and echoed back with a warning."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "registry_tool", "key", "generate", str(tmp_path / "k")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        if stdin == "piped":
            proc.stdin.write("pw\npw\n")
            proc.stdin.flush()
        # The pipe stays open until the process has ended (a CI step's standard input).
        proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 2, err
    assert "no terminal" in err and "--passphrase-env" in err
    assert not (tmp_path / "k.key").exists()


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


@pytest.mark.parametrize("comment", ["my-plugins index key", "anything", "minisign public key"])
def test_a_secret_key_is_known_by_its_content_not_its_comment(
    tmp_path: Path, alice: SecretKey, comment: str
) -> None:
    # `init` writes "<name> index key": `key show` read it as a public key ("decodes to 158 bytes").
    path = tmp_path / "index.key"
    path.write_bytes(alice.dump(None, comment=comment))
    assert describe_key(path).key_id == alice.key_id
    with pytest.raises(UsageError, match="is a secret key file"):
        load_public_key(path)
