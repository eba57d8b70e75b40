"""End to end: a base index on `main`, one pull request per test, the real check.

Each scenario asserts the verdict, the rule, the annotation's file and line, the summary text
and that the SARIF output has the structure GitHub code scanning requires.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from registry_tool.ci.check import Shard
from registry_tool.report import Finding, OutputFormat, Report, Severity, markdown_summary, render
from registry_tool.signing import sign_bytes, sign_yank
from registry_tool.trust.editing import add_maintainer, edit_root_dir, sign_root_dir

from .conftest import KEYS_ADD, SLOW_ADD, SPIN, IndexRepo, git
from .sarif import assert_valid_sarif

A = "index/plugins/alpha"


def errors(report: Report) -> list[Finding]:
    return [f for _, f in report.findings() if f.severity is Severity.error]


def only_rule(report: Report, rule: str) -> list[Finding]:
    return [f for _, f in report.findings() if f.rule == rule]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if line.startswith(text))


def github_output(report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = io.StringIO()
    render(report, OutputFormat.github, out)
    return out.getvalue(), summary.read_text()


def test_valid_new_plugin_passes(
    index_repo: IndexRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_repo.release("alpha_tools", "1.0.0")
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for _, f in report.findings()]
    (result,) = report.results
    assert result.subject == "plugins/alpha_tools/1.0.0"
    assert result.data["checks"] == {
        "files": True,
        "manifest": True,
        "digest": True,
        "signature": True,
        "version order": True,
        "name": True,
        "dependencies": True,
        "escalation": True,
        "smoke": True,
    }
    assert result.data["signers"] == [index_repo.keys.alice.key_id]
    assert result.data["tests"][0]["outcome"] == "passed" and result.data["tests"][0]["fuel_consumed"] > 0
    annotations, summary = github_output(report, tmp_path, monkeypatch)
    assert "::error" not in annotations
    assert "registry-tool ci check: passed" in summary and "`plugins/alpha_tools/1.0.0`" in summary
    assert "✅ signature" in summary and "adds: passed (fuel" in summary
    assert_valid_sarif(report)


def test_valid_version_bump_passes_and_runs_only_what_changed(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for _, f in report.findings()]
    assert report.results[0].data["previous"] == "1.0.0"
    # O(changed): the new release and its predecessor (for regressions), never beta.
    assert sorted(index_repo.smoked) == ["alpha/1.0.0", "alpha/1.1.0"]


def test_bump_signed_by_another_plugins_maintainer_fails(
    index_repo: IndexRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_repo.release("alpha", "1.1.0", signer=index_repo.keys.bob)
    index_repo.commit()
    report = index_repo.check()
    assert not report.ok
    (finding,) = errors(report)
    assert finding.rule == "signature" and "unauthorized-signer" in finding.message
    assert "not for plugin 'alpha'" in finding.message
    assert (finding.file, finding.line) == (f"{A}/1.1.0/plugin.toml.minisig", 1)
    annotations, summary = github_output(report, tmp_path, monkeypatch)
    assert (
        f"::error file={A}/1.1.0/plugin.toml.minisig,line=1,title=signature%3A plugins/alpha/1.1.0::"
        in annotations
    )
    assert "❌ signature" in summary and "failed" in summary
    assert_valid_sarif(report)


def test_pr_adding_its_own_key_to_the_root_cannot_authorise_itself(index_repo: IndexRepo) -> None:
    keys = index_repo.keys
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("mallory", [keys.mallory.public_key], ["alpha"]))
    # The attacker signs the new root with their own key; no root key signed it.
    data = (root_dir / "3.root.json").read_bytes()
    signature = sign_bytes(keys.mallory, data, trusted_comment="root v3")
    (root_dir / f"3.root.json.{keys.mallory.key_id}.minisig").write_text(signature)
    index_repo.release("alpha", "1.1.0", signer=keys.mallory)
    index_repo.commit()
    report = index_repo.check()
    assert not report.ok
    root = next(r for r in report.results if r.subject == "root")
    change = only_rule(report, "root-change")[0]
    assert change.severity is Severity.warning and "ROOT CHANGE" in change.message
    assert "root 2 -> 3 (INVALID): maintainer 'mallory' added" in change.message
    (bad_root,) = only_rule(report, "root-signature")
    assert (bad_root.file, bad_root.line) == ("index/root/3.root.json", 1)
    assert "not a key of the root role" in bad_root.message or "threshold" in bad_root.message
    (sig,) = only_rule(report, "signature")
    assert sig.file == f"{A}/1.1.0/plugin.toml.minisig" and "root version 2" in sig.message
    assert "ROOT CHANGE" in markdown_summary(report) and not root.ok
    assert_valid_sarif(report)


def test_properly_signed_root_change_is_reported_but_passes(index_repo: IndexRepo) -> None:
    keys = index_repo.keys
    root_dir = index_repo.index / "root"
    edit_root_dir(root_dir, add_maintainer("carol", [keys.mallory.public_key], ["gamma"]))
    sign_root_dir(root_dir, keys.root)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for _, f in report.findings()]
    (change,) = only_rule(report, "root-change")
    assert "root 2 -> 3" in change.message and "maintainer 'carol' added" in change.message
    assert change.file == "index/root/3.root.json"


def test_modified_published_release_fails_on_the_changed_line(index_repo: IndexRepo) -> None:
    manifest = index_repo.index / "plugins/alpha/1.0.0/plugin.toml"
    manifest.write_text(manifest.read_text().replace("adds two numbers", "adds two numbers, faster"))
    index_repo.commit()
    report = index_repo.check()
    (finding,) = errors(report)
    assert finding.rule == "release-changed"
    assert (finding.file, finding.line) == (f"{A}/1.0.0/plugin.toml", line_of(manifest, "description"))
    assert "immutable" in finding.message
    assert index_repo.smoked == []  # a published release is never re-run
    assert_valid_sarif(report)


def test_replaced_published_wasm_fails(index_repo: IndexRepo) -> None:
    (index_repo.index / "plugins/alpha/1.0.0/alpha.wasm").write_bytes(b"\0asm\1\0\0\0")
    index_repo.commit()
    (finding,) = errors(index_repo.check())
    assert (finding.rule, finding.file, finding.line) == ("release-changed", f"{A}/1.0.0/alpha.wasm", 1)


def test_a_mode_change_is_reported_as_such_on_line_one(index_repo: IndexRepo) -> None:
    """chmod +x alone was "modified" at line 42 of a 41-line file, and "modified" for a module."""
    for name in ("plugin.toml", "alpha.wasm"):
        (index_repo.index / "plugins/alpha/1.0.0" / name).chmod(0o755)
    index_repo.commit()
    findings = sorted(errors(index_repo.check()), key=lambda f: f.file or "")
    assert [(f.rule, f.file, f.line) for f in findings] == [
        ("release-changed", f"{A}/1.0.0/{name}", 1) for name in ("alpha.wasm", "plugin.toml")
    ]
    assert all("mode only" in f.message for f in findings)


def test_a_shortened_published_file_points_at_a_line_it_has(index_repo: IndexRepo) -> None:
    manifest = index_repo.index / "plugins/alpha/1.0.0/plugin.toml"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:-1]))
    index_repo.commit()
    (finding,) = errors(index_repo.check())
    assert finding.rule == "release-changed" and finding.line == len(lines) - 1


def test_removed_release_fails(index_repo: IndexRepo) -> None:
    git(index_repo.path, "rm", "-q", "-r", "index/plugins/beta/1.0.0")
    index_repo.commit()
    report = index_repo.check()
    found = errors(report)
    assert {f.rule for f in found} == {"release-removed"}
    assert {f.file for f in found} == {
        "index/plugins/beta/1.0.0/plugin.toml",
        "index/plugins/beta/1.0.0/plugin.toml.minisig",
        "index/plugins/beta/1.0.0/beta.wasm",
    }
    assert report.results[0].subject == "plugins/beta/1.0.0"
    assert_valid_sarif(report)


def test_version_going_backwards_fails_on_the_version_line(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "0.9.0")
    index_repo.commit()
    report = index_repo.check()
    (finding,) = errors(report)
    assert finding.rule == "version-backwards" and "lower than the published 1.0.0" in finding.message
    assert (finding.file, finding.line) == (
        f"{A}/0.9.0/plugin.toml",
        line_of(release / "plugin.toml", "version"),
    )
    assert_valid_sarif(report)


def test_backports_allowed_by_base_config(index_repo: IndexRepo) -> None:
    # The switch is read from registry.toml AT THE BASE: flipping it in the PR itself does nothing.
    config = index_repo.index / "registry.toml"
    config.write_text(config.read_text().replace("allow_backports = false", "allow_backports = true"))
    index_repo.release("alpha", "0.9.0")
    index_repo.commit()
    report = index_repo.check()
    # Judged by the base's policy, and the unpinned change itself is refused (test_registry_config.py).
    assert {f.rule for f in errors(report)} == {"version-backwards", "config-unauthorised"}


@pytest.mark.parametrize("allow", [False, True], ids=["blocked", "approved"])
def test_permission_escalation(index_repo: IndexRepo, allow: bool) -> None:
    release = index_repo.release("alpha", "1.1.0", KEYS_ADD, permissions={"keys": True})
    index_repo.commit()
    report = index_repo.check(allow_escalation=allow)
    assert report.ok is allow
    perm = only_rule(report, "permission-escalation")[0]
    imp = only_rule(report, "import-escalation")[0]
    assert (perm.file, perm.line) == (
        f"{A}/1.1.0/plugin.toml",
        line_of(release / "plugin.toml", "keys = true"),
    )
    assert "ESCALATION" in perm.message and "'keys'" in perm.message
    assert imp.line == line_of(release / "plugin.toml", "file =") and "ferrite:keys.get" in imp.message
    expected = Severity.warning if allow else Severity.error
    assert perm.severity is expected and imp.severity is expected
    summary = markdown_summary(report)
    assert "⚠️ permission keys" in summary and "⚠️ import ferrite:keys.get" in summary
    assert_valid_sarif(report)


def test_hostile_infinite_loop_fails_smoke(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0", SPIN)
    index_repo.commit()
    report = index_repo.check()
    (finding,) = errors(report)
    assert finding.rule == "smoke-failed"
    assert "out_of_fuel" in finding.message or "timeout" in finding.message
    assert (finding.file, finding.line) == (
        f"{A}/1.1.0/plugin.toml",
        line_of(release / "plugin.toml", "[[tests]]"),
    )
    assert "adds: out_of_fuel" in markdown_summary(report) or "adds: timeout" in markdown_summary(report)
    assert_valid_sarif(report)


def test_fuel_regression_warns(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0", SLOW_ADD.format(n=2000))
    index_repo.commit()
    report = index_repo.check()
    assert report.ok
    (warning,) = only_rule(report, "fuel-regression")
    assert warning.severity is Severity.warning and "threshold 25%" in warning.message
    assert report.results[0].data["regressions"][0]["metric"] == "fuel_consumed"


def test_signed_yank_passes_and_foreign_yank_fails(index_repo: IndexRepo) -> None:
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.yank("beta", "1.0.0", index_repo.keys.alice)  # alice is not beta's maintainer
    index_repo.commit()
    report = index_repo.check()
    by_subject = {r.subject: r for r in report.results}
    assert by_subject["plugins/alpha/1.0.0"].ok and by_subject["plugins/alpha/1.0.0"].data["kind"] == "yank"
    (bad,) = errors(report)
    assert bad.rule == "signature" and bad.file == "index/plugins/beta/1.0.0/yank.toml.minisig"
    assert index_repo.smoked == []


def test_a_yank_that_strands_a_dependent_passes_with_a_warning_naming_it(index_repo: IndexRepo) -> None:
    """alpha 1.1.0 needs beta ^1.0, which only beta 1.0.0 meets: yanking it passed without a word,
    and the build then warned that clients cannot install alpha 1.1.0."""
    index_repo.release("alpha", "1.1.0", dependencies={"beta": "^1.0"})
    index_repo.commit("alpha 1.1.0")
    merged = git(index_repo.path, "rev-parse", "HEAD").strip()
    index_repo.yank("beta", "1.0.0", index_repo.keys.bob)
    index_repo.commit("yank beta")
    report = index_repo.check(base=merged)
    assert report.ok, [f.text() for f in errors(report)]
    (warning,) = only_rule(report, "yank-strands-dependents")
    assert warning.severity is Severity.warning and warning.file == "index/plugins/beta/1.0.0/yank.toml"
    assert "alpha 1.1.0 (needs beta ^1.0)" in warning.message
    # A yank no dependent needs says nothing.
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.commit("yank alpha 1.0.0")
    merged = git(index_repo.path, "rev-parse", "HEAD~1").strip()
    assert only_rule(index_repo.check(base=merged), "yank-strands-dependents") == []


def test_files_outside_plugin_folders_fail(index_repo: IndexRepo) -> None:
    (index_repo.index / "notes.md").write_text("hello\n")
    (index_repo.index / "plugins/alpha/README.md").write_text("hi\n")
    release = index_repo.release("alpha", "1.1.0")
    (release / "extra.bin").write_bytes(b"payload")
    index_repo.commit()
    report = index_repo.check()
    outside = {f.file for f in only_rule(report, "file-outside-plugin")}
    assert outside == {"index/notes.md", "index/plugins/alpha/README.md"}
    (stray,) = only_rule(report, "unexpected-file")
    assert stray.file == f"{A}/1.1.0/extra.bin" and not report.ok


def test_tampered_artifact_in_new_release_fails(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    (release / "alpha.wasm").write_bytes((release / "alpha.wasm").read_bytes() + b"\0")
    index_repo.commit()
    report = index_repo.check()
    rules = {f.rule for f in errors(report)}
    assert rules & {"digest-mismatch", "size-mismatch", "artifact-digest"}
    assert "smoke-failed" not in rules and index_repo.smoked == []  # nothing unpinned is executed


def test_shards_split_releases_deterministically(index_repo: IndexRepo) -> None:
    for name in ("alpha_a", "alpha_b", "alpha_c"):
        index_repo.release(name, "1.0.0")
    (index_repo.index / "notes.md").write_text("x\n")
    index_repo.commit()
    full = [r.subject for r in index_repo.check().results]
    parts = [[r.subject for r in index_repo.check(shard=Shard(i, 2)).results] for i in (1, 2)]
    assert sorted(parts[0] + parts[1]) == sorted(full)
    assert not set(parts[0]) & set(parts[1])
    assert "index (index files)" in parts[0]  # index-wide checks run once, in shard 1
    assert parts == [[r.subject for r in index_repo.check(shard=Shard(i, 2)).results] for i in (1, 2)]


def test_json_output_is_stable(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0", signer=index_repo.keys.bob)
    index_repo.commit()
    out = io.StringIO()
    render(index_repo.check(), OutputFormat.json, out)
    doc = json.loads(out.getvalue())
    assert doc["format_version"] == 1 and doc["command"] == "ci check" and doc["ok"] is False
    (result,) = doc["results"]
    assert set(result) == {"subject", "file", "ok", "findings", "data"}
    assert set(result["data"]) >= {"plugin", "version", "kind", "checks", "tests", "signers", "previous"}
    assert result["findings"][0]["rule"] == "signature"


def test_unsigned_release_fails(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    (release / "plugin.toml.minisig").unlink()
    index_repo.commit()
    (finding,) = errors(index_repo.check())
    assert finding.rule == "signature" and "no signature" in finding.message
    assert (finding.file, finding.line) == (f"{A}/1.1.0/plugin.toml", 1)


def test_symlink_in_release_fails(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    (release / "passwd").symlink_to("/etc/passwd")
    index_repo.commit()
    (finding,) = only_rule(index_repo.check(), "unexpected-file")
    assert finding.file == f"{A}/1.1.0/passwd" and "symbolic link" in finding.message


def test_published_root_is_immutable(index_repo: IndexRepo) -> None:
    root = index_repo.index / "root" / "1.root.json"
    root.write_text(root.read_text().replace('"version": 1', '"version": 1 '))
    index_repo.commit()
    report = index_repo.check()
    (finding,) = errors(report)
    assert (finding.rule, finding.file) == ("root-immutable", "index/root/1.root.json")


def test_changing_a_published_yank_fails(index_repo: IndexRepo) -> None:
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice)
    index_repo.commit()
    git(index_repo.path, "branch", "yanked")  # the yank is merged: this is the new base
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice, reason="changed my mind")
    index_repo.commit()
    found = errors(index_repo.check(base="yanked"))
    assert {f.rule for f in found} == {"release-changed"}
    assert f"{A}/1.0.0/yank.toml" in {f.file for f in found}


def test_yank_naming_another_release_fails(index_repo: IndexRepo) -> None:
    d = index_repo.index / "plugins/alpha/1.0.0"
    (d / "yank.toml").write_text('[yank]\nname = "alpha"\nversion = "9.9.9"\nreason = "x"\n')
    sign_yank(d, index_repo.keys.alice)
    index_repo.commit()
    found = errors(index_repo.check())
    mismatch = [f for f in found if f.rule == "yank-invalid"]
    assert mismatch and mismatch[0].line == 3 and mismatch[0].file == f"{A}/1.0.0/yank.toml"


def test_symlinked_release_folder_is_refused_without_reading(index_repo: IndexRepo) -> None:
    # A release whose plugin.toml is a link to /dev/zero would hang a reader; nothing is read.
    release = index_repo.index / "plugins/alpha/1.1.0"
    release.mkdir(parents=True)
    (release / "plugin.toml").symlink_to("/dev/zero")
    index_repo.commit()
    (finding,) = errors(index_repo.check())
    assert (finding.rule, finding.file) == ("unexpected-file", f"{A}/1.1.0/plugin.toml")
    assert index_repo.smoked == []


def test_file_added_to_published_release_fails(index_repo: IndexRepo) -> None:
    (index_repo.index / "plugins/alpha/1.0.0/notes.txt").write_text("hi\n")
    index_repo.commit()
    (finding,) = errors(index_repo.check())
    assert finding.rule == "release-changed" and "was added" in finding.message


def test_signature_added_to_published_root_fails(index_repo: IndexRepo) -> None:
    root = index_repo.index / "root" / "2.root.json"
    key = index_repo.keys.mallory
    (root.parent / f"2.root.json.{key.key_id}.minisig").write_text(
        sign_bytes(key, root.read_bytes(), trusted_comment="x")
    )
    (root.parent / "README").write_text("x\n")
    index_repo.commit()
    report = index_repo.check()
    assert {f.rule for f in errors(report)} == {"root-immutable", "unexpected-file"}


def test_workflow_change_is_reported(index_repo: IndexRepo) -> None:
    wf = index_repo.path / ".github" / "workflows" / "pr-check.yml"
    wf.parent.mkdir(parents=True)
    wf.write_text("on: pull_request\n")
    index_repo.commit()
    report = index_repo.check()
    (finding,) = only_rule(report, "workflow-change")
    assert finding.severity is Severity.warning and finding.file == ".github/workflows/pr-check.yml"
    assert report.ok  # a warning: the verdict stands, reviewers are told


def test_full_recheck_runs_every_release(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0", KEYS_ADD, permissions={"keys": True})
    index_repo.commit()
    git(index_repo.path, "branch", "merged")
    report = index_repo.check(base="merged", full=True)
    assert [r.subject for r in report.results] == [
        "plugins/alpha/1.0.0",
        "plugins/alpha/1.1.0",
        "plugins/beta/1.0.0",
    ]
    assert report.ok and {r.data["kind"] for r in report.results} == {"recheck"}
    # Escalations approved when they merged are listed, not failed.
    assert only_rule(report, "permission-escalation")[0].severity is Severity.notice
    assert sorted(index_repo.smoked) == ["alpha/1.0.0", "alpha/1.0.0", "alpha/1.1.0", "beta/1.0.0"]


def test_broken_toml_in_new_release_is_reported_with_its_line(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    (release / "plugin.toml").write_text('[plugin]\nname = "alpha"\nversion = \n')
    index_repo.commit()
    report = index_repo.check()
    syntax = [f for f in errors(report) if f.line == 3 and f.file == f"{A}/1.1.0/plugin.toml"]
    assert syntax, [f.text() for f in errors(report)]
    assert index_repo.smoked == []


def test_a_crashing_check_fails_closed(index_repo: IndexRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    import registry_tool.ci.release as release_checks

    def boom(*_args: object) -> set[tuple[str, str]]:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(release_checks, "_imports", boom)
    index_repo.release("alpha", "1.1.0")
    index_repo.commit()
    report = index_repo.check()
    (finding,) = errors(report)
    assert finding.rule == "internal-error" and "escalation check crashed" in finding.message


def test_memory_regression_warns(index_repo: IndexRepo) -> None:
    mem = (
        '(module (memory (export "memory") {pages})'
        ' (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
    )
    index_repo.release("alpha_mem", "1.0.0", mem.format(pages=1))
    index_repo.commit()
    git(index_repo.path, "branch", "with-mem")  # merged: the base of the next PR
    index_repo.release("alpha_mem", "1.1.0", mem.format(pages=4))
    index_repo.commit()
    report = index_repo.check(base="with-mem")
    assert report.ok
    (warning,) = only_rule(report, "memory-regression")
    assert "300% more than 1.0.0" in warning.message and warning.line == 27


def test_backport_passes_when_the_base_allows_it(index_repo: IndexRepo) -> None:
    config = index_repo.index / "registry.toml"
    config.write_text(config.read_text().replace("allow_backports = false", "allow_backports = true"))
    index_repo.commit()
    git(index_repo.path, "branch", "lenient")  # merged by the registry maintainers
    index_repo.release("alpha", "0.9.0")
    index_repo.commit()
    report = index_repo.check(base="lenient")
    assert report.ok, [f.text() for _, f in report.findings()]
    assert report.results[0].data["previous"] == "1.0.0"  # compared with its nearest neighbour


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1/2/3", "a/b", "", "-1/2"])
def test_bad_shard_specs(text: str) -> None:
    from registry_tool.errors import UsageError

    with pytest.raises(UsageError):
        Shard.parse(text)


def test_shard_assignment_is_a_partition() -> None:
    for count in (1, 2, 3, 7):
        owners = [[Shard(i, count).owns(p) for i in range(1, count + 1)] for p in range(50)]
        assert all(sum(row) == 1 for row in owners)


def test_yank_in_a_new_release_must_be_signed(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0")
    (release / "yank.toml").write_text('[yank]\nname = "alpha"\nversion = "1.1.0"\nreason = "oops"\n')
    index_repo.commit()
    (finding,) = errors(index_repo.check())
    assert (finding.rule, finding.file) == ("signature", f"{A}/1.1.0/yank.toml")


@pytest.mark.slow  # smoke-runs the whole sample index (Go modules included)
def test_full_recheck_of_the_bundled_sample_index(tmp_path: Path) -> None:
    """Every ABI the registry serves (core, wasi-command, extism, component) through the real check."""
    import shutil

    from registry_tool.ci.check import CheckOptions, check_pull_request

    sample = Path(__file__).resolve().parents[2] / "index"
    if not (sample / "root" / "1.root.json").is_file():
        pytest.skip("the sample index has no root yet")
    repo = tmp_path / "sample"
    shutil.copytree(sample, repo / "index")
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for key, value in (("user.email", "t@example.invalid"), ("user.name", "t"), ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sample")
    report = check_pull_request(repo, [], CheckOptions(base="HEAD", full=True))
    assert report.ok, [f.text() for _, f in report.findings()]
    abis = {r.data["validate"]["abi"] for r in report.results}
    assert {"core", "wasi-command", "extism", "component"} <= abis
    assert all(t["passed"] for r in report.results for t in r.data["tests"])


@pytest.mark.parametrize("cosigned", [False, True], ids=["one-of-two", "two-of-two"])
def test_root_change_needs_the_new_threshold(index_repo: IndexRepo, cosigned: bool) -> None:
    from registry_tool.trust.editing import rotate_keys

    keys, root_dir = index_repo.keys, index_repo.index / "root"
    # Root v3 adds a second root key and raises the root threshold to 2.
    edit_root_dir(root_dir, rotate_keys("root", add=[keys.mallory.public_key], threshold=2))
    sign_root_dir(root_dir, keys.root)
    if cosigned:
        sign_root_dir(root_dir, keys.mallory)
    index_repo.commit()
    report = index_repo.check()
    assert report.ok is cosigned
    change = only_rule(report, "root-change")[0]
    assert "root role 1 key(s)/threshold 1 -> 2 key(s)/threshold 2" in change.message
    if not cosigned:
        (bad,) = only_rule(report, "root-signature")
        assert "threshold-not-met" in bad.message and bad.file == "index/root/3.root.json"


def test_index_at_the_repository_root(tmp_path: Path) -> None:
    import wasmtime

    from registry_tool.ci.check import CheckOptions, check_pull_request
    from registry_tool.signing import sign_release

    from .conftest import ADD, make_base_repo, manifest_text

    path, keys = make_base_repo(tmp_path / "repo")
    for item in sorted((path / "index").iterdir()):  # the index moves up to the repository root
        git(path, "mv", f"index/{item.name}", item.name)
    git(path, "commit", "-q", "-m", "index at root")
    git(path, "checkout", "-q", "-b", "pr")
    (path / "README.md").write_text("docs are not index files\n")
    release = path / "plugins" / "alpha" / "1.1.0"
    release.mkdir(parents=True)
    (release / "alpha.wasm").write_bytes(wasmtime.wat2wasm(ADD))
    (release / "plugin.toml").write_text(manifest_text("alpha", "1.1.0"))
    sign_release(release, keys.alice)
    IndexRepo(path, keys).commit()
    report = check_pull_request(path, [], CheckOptions(base="main"))
    assert report.ok, [f.text() for _, f in report.findings()]
    assert [r.subject for r in report.results] == ["plugins/alpha/1.1.0"]
    assert report.results[0].file == "plugins/alpha/1.1.0/plugin.toml"


def test_uncommitted_changes_are_a_warning(index_repo: IndexRepo) -> None:
    index_repo.release("alpha", "1.1.0")  # written, never committed: not in REF...HEAD
    report = index_repo.check()
    (finding,) = only_rule(report, "uncommitted-changes")
    assert finding.severity is Severity.warning and "3 uncommitted change(s)" in finding.message
    assert index_repo.smoked == []
    assert_valid_sarif(report)


def test_a_crash_is_a_sarif_result_github_takes(index_repo: IndexRepo) -> None:
    """It had no location, and GitHub code scanning refuses an upload with such a result."""
    from registry_tool.ci.check import crash_report

    assert_valid_sarif(crash_report(RuntimeError("boom"), "index/registry.toml"))


def test_dependency_on_a_plugin_the_index_lacks(index_repo: IndexRepo) -> None:
    release = index_repo.release("alpha", "1.1.0", dependencies={"ghost": "^1"})
    index_repo.commit()
    report = index_repo.check()
    (finding,) = errors(report)
    assert finding.rule == "dependency-unknown" and "'ghost'" in finding.message
    expected = (f"{A}/1.1.0/plugin.toml", line_of(release / "plugin.toml", "ghost"))
    assert (finding.file, finding.line) == expected


def test_dependency_resolves_against_base_plus_pr(index_repo: IndexRepo) -> None:
    # beta 1.1.0 arrives in the same PR: the dependency resolves against base + PR.
    index_repo.release("beta", "1.1.0", signer=index_repo.keys.bob)
    index_repo.release("alpha", "1.1.0", dependencies={"beta": "^1.1"})
    index_repo.commit()
    report = index_repo.check()
    assert report.ok, [f.text() for _, f in report.findings()]
    (alpha,) = [r for r in report.results if r.subject == "plugins/alpha/1.1.0"]
    assert alpha.data["dependency_graph"] == ["beta 1.1.0"]


@pytest.mark.parametrize(
    ("dependency", "verdict"),
    [
        ("1.0.0-rc.1", "dependency-unsatisfiable"),  # only beta 1.0.0 exists: a pre-release pin
        (">=1.0.0, <2.0.0", None),  # the documented comma form
        ("=1", None),  # the format's partial pin
    ],
)
def test_dependency_ranges_match_as_the_build_and_clients_match_them(
    index_repo: IndexRepo, dependency: str, verdict: str | None
) -> None:
    """ci check matched with semantic_version, the build with the format's ranges: a PR it passed
    then stopped every build (1.0.0-rc.1 against 1.0.0), and '=1' was refused here only."""
    index_repo.release("alpha", "1.1.0", dependencies={"beta": dependency})
    index_repo.commit()
    report = index_repo.check()
    rules = [f.rule for f in errors(report)]
    assert rules == ([verdict] if verdict else []), [f.text() for f in errors(report)]


def test_a_release_closing_a_dependency_cycle_over_a_published_one_is_refused(index_repo: IndexRepo) -> None:
    """alphab 1.0.0 (published) needs alphac ^1; a new alphac 1.1.0 needing alphab >=1.0.0 made
    alphab 1.0.0 uninstallable (a cycle), and ci check only resolved alphac's own graph."""
    index_repo.release("alphab", "1.0.0", dependencies={"alphac": "^1"})
    index_repo.release("alphac", "1.0.0")
    index_repo.commit("base")
    index_repo.release("alphac", "1.1.0", dependencies={"alphab": ">=1.0.0"})
    index_repo.release("alphab", "2.0.0")
    index_repo.commit()
    found = errors(index_repo.check(base="HEAD~1"))
    assert [(f.rule, f.file) for f in found] == [
        ("dependency-cycle", "index/plugins/alphac/1.1.0/plugin.toml")
    ]
    assert "alphab 1.0.0 can no longer be installed" in found[0].message


def test_permission_smuggled_through_a_dependency_is_an_escalation(index_repo: IndexRepo) -> None:
    # alpha 1.1.0 declares no permission itself, but installing it installs beta 2.0.0 with keys.
    index_repo.release("beta", "2.0.0", KEYS_ADD, signer=index_repo.keys.bob, permissions={"keys": True})
    index_repo.release("alpha", "1.1.0", dependencies={"beta": "^2"})
    index_repo.commit()
    report = index_repo.check()
    (alpha,) = [r for r in report.results if r.subject == "plugins/alpha/1.1.0"]
    smuggled = [f for f in alpha.findings if f.rule == "permission-escalation"]
    assert smuggled and "'keys' to a dependency" in smuggled[0].message
    assert smuggled[0].severity is Severity.error and not report.ok


def test_a_permission_any_release_in_a_dependency_range_holds_is_an_escalation(index_repo: IndexRepo) -> None:
    """CI resolves beta 3.0.0 (no permission), but a client whose host version beta 3.0.0 excludes
    installs beta 2.0.0, which has keys: every release the range could select counts."""
    index_repo.release("beta", "2.0.0", KEYS_ADD, signer=index_repo.keys.bob, permissions={"keys": True})
    index_repo.release("beta", "3.0.0", signer=index_repo.keys.bob)
    index_repo.release("alpha", "1.1.0", dependencies={"beta": ">=2.0.0"})
    index_repo.commit()
    report = index_repo.check()
    (alpha,) = [r for r in report.results if r.subject == "plugins/alpha/1.1.0"]
    assert "permission-escalation" in {f.rule for f in alpha.findings if f.severity is Severity.error}


def test_yank_reason_with_terminal_escapes_fails(index_repo: IndexRepo) -> None:
    # Every client prints the reason when it refuses the release: no escape, bidi or zero-width.
    reason = "CVE-1\\u001b]52;c;eA==\\u0007\\u202e"  # TOML escapes
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice, reason=reason)
    index_repo.commit()
    (bad,) = [f for f in errors(index_repo.check()) if f.rule == "yank-invalid"]
    assert "characters (\\x07, \\x1b, \\u202e)" in bad.message
    assert bad.field == "yank.reason" and bad.file == f"{A}/1.0.0/yank.toml"


def test_a_yank_reason_longer_than_the_plugin_document_allows_fails(index_repo: IndexRepo) -> None:
    """The published document caps it at 4,096 characters: a longer one would break the site's schema."""
    index_repo.yank("alpha", "1.0.0", index_repo.keys.alice, reason="x" * 5000)
    index_repo.commit()
    (bad,) = [f for f in errors(index_repo.check()) if f.rule == "yank-invalid"]
    assert "5000 characters, above the 4096" in bad.message and bad.field == "yank.reason"


def test_an_oversized_or_deeply_dotted_yank_is_refused_without_parsing_it(index_repo: IndexRepo) -> None:
    # A 100,000-part dotted key took tomli minutes (quadratic); the file was read without a bound.
    d = index_repo.index / "plugins/alpha/1.0.0"
    (d / "yank.toml").write_text('[yank]\nname = "alpha"\nversion = "1.0.0"\nreason = "x"\n' + "#" * 70_000)
    sign_yank(d, index_repo.keys.alice)
    index_repo.commit()
    (big,) = [f for f in errors(index_repo.check()) if f.rule == "yank-invalid"]
    assert "64 KiB" in big.message
    (d / "yank.toml").write_text('[yank]\nname = "alpha"\nversion = "1.0.0"\nreason = "x"\n')
    sign_yank(d, index_repo.keys.alice)
    key = "x." + ".".join(["a"] * 20_000)  # the signing tool refuses it too: written after signing
    (d / "yank.toml").write_text(f'[yank]\nname = "alpha"\nversion = "1.0.0"\nreason = "x"\n{key} = 1\n')
    index_repo.commit("deep")
    found = errors(index_repo.check())
    assert any("more than 64 parts" in f.message for f in found), found
