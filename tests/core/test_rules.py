"""The rule catalogue is the one list of rule ids: every id the source emits is in it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from registry_tool.rules import RULES, describe, rule_ids

REPO = Path(__file__).resolve().parents[2]
RULE_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Functions whose first argument is a rule id: Finding(...) and the modules' own finding helpers.
_HELPERS = {"Finding", "add", "bad"}


def _constants(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _constants(node.body) + _constants(node.orelse)
    return []


def emitted_rule_ids() -> dict[str, str]:
    """rule id -> where in registry_tool/ it is emitted, found by reading the source.

    Error classes' ``code``, the first argument (or ``rule=``) of ``Finding`` and of the finding
    helpers, and the ids of ``for rule, ... in ((...), ...)`` tables.
    """
    found: dict[str, str] = {}
    for path in sorted((REPO / "registry_tool").rglob("*.py")):
        where = path.relative_to(REPO).as_posix()
        if where.startswith("registry_tool/manifest/_schemas/"):
            continue  # generated schema validators: their rule= names a JSON-Schema keyword, not a rule
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            ids: list[str] = []
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    target = (
                        stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
                    )
                    value = getattr(stmt, "value", None)
                    if isinstance(target, ast.Name) and target.id == "code" and value is not None:
                        ids += _constants(value)
            elif isinstance(node, ast.Call):
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
                ids += [c for kw in node.keywords if kw.arg == "rule" for c in _constants(kw.value)]
                if name in _HELPERS and node.args:
                    ids += [c for c in _constants(node.args[0]) if RULE_ID.match(c)]
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
                first = node.target.elts[0] if node.target.elts else None
                if (
                    isinstance(first, ast.Name)
                    and first.id == "rule"
                    and isinstance(node.iter, ast.Tuple | ast.List)
                ):
                    for row in node.iter.elts:
                        if isinstance(row, ast.Tuple) and row.elts:
                            ids += _constants(row.elts[0])
            for rule in ids:
                found.setdefault(rule, f"{where}:{getattr(node, 'lineno', 0)}")
    return found


def test_every_rule_id_the_source_emits_is_in_the_catalogue() -> None:
    emitted = emitted_rule_ids()
    # The scan must see emitters of every kind (class code, Finding, helper, rule table) to prove anything.
    assert {"bad-signature", "yanked", "digest-unpinned", "fuel-regression", "host-range"} <= set(emitted)
    assert len(emitted) > 100
    missing = {rule: where for rule, where in emitted.items() if rule not in RULES}
    assert missing == {}


def test_every_smoke_outcome_rule_is_in_the_catalogue() -> None:
    from registry_tool.sandbox.harness import UNEXPECTED_PASS_RULE
    from registry_tool.sandbox.outcome import Outcome

    # The harness names a failed test's rule after its outcome: smoke-<outcome>; a test that
    # expected a failure and passed has its own (it was "smoke-passed", in no catalogue).
    outcomes = {f"smoke-{o.value.replace('_', '-')}" for o in Outcome if o is not Outcome.passed}
    assert outcomes | {UNEXPECTED_PASS_RULE} <= set(RULES)


def test_the_rule_lists_of_validate_and_ci_are_the_catalogue() -> None:
    from registry_tool.ci.model import RULES as CI_RULES
    from registry_tool.ci.release import _DIGEST_RULES
    from registry_tool.manifest.validate import RULES as VALIDATE_RULES

    assert rule_ids("validate") == VALIDATE_RULES
    assert list(CI_RULES) == list(rule_ids("ci"))
    assert all(CI_RULES[r] == RULES[r].summary for r in CI_RULES)
    assert set(RULES) >= _DIGEST_RULES


def test_every_rule_has_a_description_a_severity_and_a_docs_page_that_exists() -> None:
    for rule in RULES.values():
        assert RULE_ID.match(rule.id), rule.id
        assert rule.summary.endswith(".") and "\n" not in rule.summary, rule.id
        page, _, anchor = rule.doc.partition("#")
        assert (REPO / page).is_file(), rule.doc
        headings = {
            re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in (REPO / page).read_text(encoding="utf-8").splitlines()
            if line.startswith("#")
        }
        assert anchor in headings, f"{rule.id}: no heading for #{anchor} in {page}"
        assert rule.help_uri.startswith("https://") and rule.help_uri.endswith(rule.doc)


def test_an_id_missing_from_the_catalogue_still_describes_itself() -> None:
    rule = describe("no-such-rule")
    assert (rule.id, rule.summary) == ("no-such-rule", "no such rule")


def test_docs_rules_md_is_generated_from_the_catalogue() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_rules_doc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert all(f"| `{rule}` |" in text for rule in RULES)
