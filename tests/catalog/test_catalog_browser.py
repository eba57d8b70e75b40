"""The catalog page in a real (Debian) Chromium: it verifies a format-2 site, then lists, searches and
shows plugins; every failure (tampered document, expired registry, unknown key, broken root chain)
shows the red state and none of the unverified content."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from registry_tool.signing import sign_bytes

from .conftest import Server
from .site_fixture import KEYS, Plugin, Release, build_site, sample_plugins, synthetic_plugins, tamper

pytestmark = pytest.mark.browser

SETTLED = "#badge[data-state=verified], #badge[data-state=failed]"


def site_url(server: Server, name: str, **kw: Any) -> str:
    """Build a site under a sub-path of the server (the page must only use relative URLs)."""
    path = server.root / "registries" / name
    if path.exists():
        shutil.rmtree(path)
    build_site(path, **kw)
    return f"{server.url}registries/{name}/"


def open_page(browser: Any, url: str, **ctx: Any) -> Any:
    page = browser.new_context(**ctx).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector(SETTLED, timeout=15000)
    page.js_errors = errors
    return page


def badge(page: Any) -> tuple[str, str]:
    return page.get_attribute("#badge", "data-state"), page.inner_text("#badge")


def assert_failed(page: Any, title: str, error: str) -> None:
    state, text = badge(page)
    assert state == "failed", text
    assert f"Not verified: {title}" in text
    assert page.get_attribute(".failure", "data-error") == error
    # nothing from the registry is shown as if it were fine
    assert page.locator("#results li").count() == 0
    assert page.locator("article").count() == 0
    assert page.js_errors == []


@pytest.fixture(scope="module")
def good(server: Server) -> str:
    return site_url(server, "good")


# --------------------------------------------------------------------------- primitives in the page


@pytest.fixture(scope="module")
def primitives(browser: Any, good: str) -> Any:
    """One verified page for the tests that call the page's functions directly."""
    return open_page(browser, good)


def test_blake2b_matches_rfc7693_and_hashlib(primitives: Any) -> None:
    page = primitives
    hexdigest = "(s) => RegistryCatalog.hex(RegistryCatalog.blake2b512(new TextEncoder().encode(s)))"
    # RFC 7693 appendix A ("abc") and the empty message.
    assert page.evaluate(hexdigest, "abc") == (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    )
    assert page.evaluate(hexdigest, "") == (
        "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419"
        "d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce"
    )
    # Block boundaries and multi-block messages against Python's hashlib.
    for n in (1, 111, 127, 128, 129, 255, 256, 257, 1000, 70_000):
        data = bytes((i * 7 + 3) % 256 for i in range(n))
        got = page.evaluate(
            "(a) => RegistryCatalog.hex(RegistryCatalog.blake2b512(new Uint8Array(a)))", list(data)
        )
        assert got == hashlib.blake2b(data, digest_size=64).hexdigest(), n


def test_a_signer_is_named_only_as_a_maintainer_delegated_the_plugin(primitives: Any) -> None:
    """The signers table named a key's maintainer whatever plugin the release was of."""
    who = "([k, p]) => RegistryCatalog.maintainersOf(RegistryCatalog.app.state.root, k, p)"
    key = KEYS["ferritelabs"].key_id  # delegated validate_email and visit_* only
    assert primitives.evaluate(who, [key, "validate_email"]) == ["ferritelabs"]
    assert primitives.evaluate(who, [key, "visit_counter"]) == ["ferritelabs"]
    assert primitives.evaluate(who, [key, "uppercase"]) == []


def test_only_plain_http_urls_become_links(primitives: Any) -> None:
    """https://github.com@evil.example/ (shows github.com, opens evil.example) and URLs holding a
    bidi override or a line separator were linked as given."""
    safe = "(u) => RegistryCatalog.safeUrl(u)"
    assert primitives.evaluate(safe, "https://github.com/example/x") == "https://github.com/example/x"
    for bad in (
        "https://github.com@evil.example/x",
        "https://user:pw@example.org/",
        "https://example.org/\u202egnp.exe",
        "https://example.org/a\u2028b",
        "javascript:alert(1)",
        "data:text/html,x",
    ):
        assert primitives.evaluate(safe, bad) is None, bad


def test_host_ranges_follow_the_format_grammar(primitives: Any) -> None:
    page = primitives
    check = """([r, v]) => {
        const range = RegistryCatalog.parseRange(r);
        return range === null ? null : RegistryCatalog.satisfies(range, RegistryCatalog.parseVersion(v));
    }"""
    cases = [
        (">=0.2.0, <0.4.0", "0.3.1", True),
        (">=0.2.0, <0.4.0", "0.4.0", False),
        ("^0.2", "0.2.9", True),
        ("^0.2", "0.3.0", False),
        ("^1.2", "1.9.0", True),
        ("~1.2", "1.3.0", False),
        ("1.2", "1.2.7", True),
        ("1.2.3", "1.2.4", False),
        ("<1.0.0 || >=2.0.0", "2.1.0", True),
        ("^1.0", "1.1.0-rc.1", False),
        (">=1.1.0-rc.0", "1.1.0-rc.1", True),
        ("*", "5.0.0", True),
        ("1.2 - 1.4", "1.3.0", None),
        ("bogus", "1.0.0", None),
    ]
    for r, v, want in cases:
        assert page.evaluate(check, [r, v]) == want, (r, v)


def test_host_ranges_agree_with_the_python_client(primitives: Any) -> None:
    """The page's range matcher gives the verdict of registry_tool.format.ranges on a grid of cases."""
    from registry_tool.format import RangeSyntaxError, parse_range

    ranges = [
        "*", "1", "1.x", "1.2", "1.2.x", "1.2.3", "=1.2.3", ">1.2", ">=1.2", "<1.2", "<=1.2", ">1.2.3",
        "<=1.2.3", "^0", "^0.0", "^0.0.3", "^0.2", "^0.2.3", "^1.2", "^1.2.3-beta.2", "~0", "~1.2",
        "~1.2.3", ">=0.2.0, <0.4.0", ">=0.2.0 <0.4.0", "<1.0.0 || >=2.0.0", ">=1.2.3-alpha <1.3",
        "1.2.3-rc.1", "", "1.2 - 1.4", ">=", "^x", "1.2.3.4", "01.2", " 1.2", "x", "1.x.3", "1.*",
        ">=1.x", "<2.x", "~1.x", "^1.x.x", "1.2.3-01", "1.2.3-", ">=1.0.0,<2.0.0", "1 || 2", "||",
        "1.2\n", ">=1.2 ,  <2", "1 ||2", "1 , , 2", "1,",
    ]  # fmt: skip
    versions = ["0.0.3", "0.0.4", "0.2.2", "0.2.3", "0.2.9", "0.3.0", "0.4.0", "1.0.0", "1.2.0",
                "1.2.3", "1.2.3-alpha", "1.2.3-beta.2", "1.2.3-rc.1", "1.2.4", "1.3.0-rc.1", "1.3.0",
                "1.9.9", "2.0.0", "2.0.0-0", "3.1.4"]  # fmt: skip
    check = """(cases) => cases.map(([r, v]) => {
        const range = RegistryCatalog.parseRange(r);
        return range === null ? null : RegistryCatalog.satisfies(range, RegistryCatalog.parseVersion(v));
    })"""
    cases = [[r, v] for r in ranges for v in versions]
    got = primitives.evaluate(check, cases)
    for (r, v), verdict in zip(cases, got, strict=True):
        try:
            want: bool | None = parse_range(r).matches(v)
        except RangeSyntaxError:
            want = None
        assert verdict == want, (r, v)


def test_json_outside_the_registry_rules_is_refused(primitives: Any) -> None:
    parse = """(t) => {
        try { return JSON.stringify(RegistryCatalog.parseJson(t, 'doc')); } catch (e) { return e.cls; }
    }"""
    for bad in (
        '{"a": 1, "a": 2}',  # duplicate member (JSON.parse would keep the last)
        '{"a": "\\ud800"}',  # lone surrogate
        '{"a": "\\udc00x"}',
        '{"a": 9007199254740993}',  # beyond 2^53
        '{"a": NaN}',
        '{"a": 1} x',
        '{"a": 01}',
    ):
        assert primitives.evaluate(parse, bad) == "malformed", bad
    assert primitives.evaluate(parse, '{"a": "\\ud83d\\ude00", "b": [1, -2, true, null]}') == (
        '{"a":"\U0001f600","b":[1,-2,true,null]}'
    )


# --------------------------------------------------------------------------- the happy path


def test_list_search_open_plugin_copy_install_command(browser: Any, good: str, server: Server) -> None:
    page = open_page(
        browser, good, permissions=["clipboard-read", "clipboard-write"], base_url=good.split("registries")[0]
    )
    state, text = badge(page)
    assert state == "verified", text
    assert "root v2" in text
    assert page.locator("#results li").count() == 4

    page.fill("#q", "email")
    assert page.locator("#results li").count() == 1
    assert page.get_attribute("#result-status", "data-count") == "1"

    # keyboard: the result is a link; Enter opens the plugin page
    page.focus("#results a")
    page.keyboard.press("Enter")
    page.wait_for_selector("article.plugin")
    assert page.inner_text("h1").startswith("validate_email")
    main = page.inner_text("main")
    assert "yanked: rejects addresses with a plus sign" in main
    assert "accepts a plain address" in main and "5,123" in main
    assert "ferritelabs" in main  # signer key id resolved to the maintainer
    assert KEYS["ferritelabs"].key_id in main
    assert "matched its signed pin" in main
    root1 = (server.root / "registries" / "good" / "root" / "1.root.json").read_bytes()
    trust = "registry-tool client trust https://plugins.example.org/ferrite/ --root-fingerprint "
    assert trust + hashlib.sha256(root1).hexdigest() in main

    cmd = "registry-tool client install validate_email@1.0.0 --registry https://plugins.example.org/ferrite/"
    page.click("button[aria-label='Copy install command']")
    page.wait_for_selector("button[aria-label='Copy install command'][data-copied]")
    assert page.evaluate("navigator.clipboard.readText()") == cmd

    # the yanked version stays reachable and is marked as such
    page.click("text=1.1.0")
    page.wait_for_selector(".yanked")
    assert "Yanked: rejects addresses with a plus sign" in page.inner_text(".yanked")
    assert badge(page)[0] == "verified"
    assert page.js_errors == []


def test_filters_abi_permission_host_license(browser: Any, good: str) -> None:
    page = open_page(browser, good)

    def names() -> list[str]:
        return page.locator("#results h2 a").all_inner_texts()

    page.select_option("#permission", "keys")
    assert names() == ["visit_counter"]
    page.select_option("#permission", "(none)")
    assert names() == ["uppercase", "validate_email"]
    page.select_option("#permission", "")
    page.select_option("#abi", "extism")
    assert names() == ["uppercase"]
    page.select_option("#abi", "")
    page.fill("#host", "0.2.5")  # uppercase needs >=0.3.0; healthcheck has no host range
    assert names() == ["healthcheck", "validate_email", "visit_counter"]
    page.fill("#host", "")
    page.select_option("#license", "MIT")
    assert names() == ["uppercase"]


def test_landmarks_labels_and_keyboard(browser: Any, good: str) -> None:
    page = open_page(browser, good)
    for landmark in ("header", "main", "footer", "nav", "form[role=search]"):
        assert page.locator(landmark).count() >= 1, landmark
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('main input, main select')].filter(e => !e.labels.length).length"
    )
    assert unlabelled == 0
    assert page.get_attribute("#badge", "role") == "status"
    page.locator("body").focus()
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    # Tab from the search box walks the filters, then reaches the first result link
    for _ in range(5):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#/plugin/healthcheck"


def test_root_page_shows_keys_thresholds_maintainers_expiry(browser: Any, good: str) -> None:
    page = open_page(browser, good + "#/root")
    page.wait_for_selector("text=Maintainers and delegations")
    main = page.inner_text("main")
    assert "2 (walked from pinned version 1)" in main
    assert "2 of 2" in main and "1 of 1" in main
    assert "ferritelabs" in main and "visit_*" in main and "community" in main
    assert KEYS["index"].key_id in main and KEYS["root-a"].key_id in main
    assert "Root expires" in main
    assert "null" not in main and "undefined" not in main


def test_markup_in_documents_is_shown_as_text(browser: Any, server: Server) -> None:
    evil = Plugin("evil_desc", "community", [Release("1.0.0", '<img src=x onerror="window.pwned=1">hi')])
    page = open_page(browser, site_url(server, "markup", plugins=[evil]))
    assert badge(page)[0] == "verified"
    assert '<img src=x onerror="window.pwned=1">hi' in page.inner_text("#results")
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_opened_from_a_file_the_page_verifies_a_chosen_folder(browser: Any, tmp_path: Path) -> None:
    build_site(tmp_path / "site")
    page = browser.new_page()
    page.goto((tmp_path / "site" / "index.html").as_uri())
    page.wait_for_selector("#site-folder", state="attached")
    assert badge(page)[0] == "checking"
    page.set_input_files("#site-folder", str(tmp_path / "site"))
    page.wait_for_selector(SETTLED)
    assert badge(page)[0] == "verified"
    assert page.locator("#results li").count() == 4


# --------------------------------------------------------------------------- failure states


def test_tampered_catalog_document_shows_failure(browser: Any, server: Server) -> None:
    path = server.root / "registries" / "tampered"
    shutil.rmtree(path, ignore_errors=True)
    site = build_site(path)
    tamper(site.catalog_path, b"RFC 5322 email", b"RFC 5322 e-mal")
    page = open_page(browser, f"{server.url}registries/tampered/")
    assert_failed(page, "Tampered document", "digest-mismatch")
    assert "the catalog document" in page.inner_text(".failure")


def test_tampered_plugin_document_is_not_shown(browser: Any, server: Server) -> None:
    path = server.root / "registries" / "tampered-plugin"
    shutil.rmtree(path, ignore_errors=True)
    site = build_site(path)
    tamper(site.plugin_doc_paths["visit_counter"], b'"keys"', b'"none"')
    page = open_page(browser, f"{server.url}registries/tampered-plugin/")
    assert badge(page)[0] == "verified"  # the list itself is intact
    page.click("text=visit_counter")
    page.wait_for_selector(".failure")
    assert_failed(page, "Tampered document", "digest-mismatch")
    assert "the document of visit_counter" in page.inner_text(".failure")
    page.click("a.brand")  # back to the list, whose documents did verify
    page.wait_for_selector("#results li")
    assert badge(page)[0] == "verified"


def test_a_smoke_figure_the_run_could_not_take_is_no_malformed_document(browser: Any, server: Server) -> None:
    """null peak memory (a component's, in the sample index built with smoke): the page said
    "Malformed document" where the client verified the same document."""
    path = server.root / "registries" / "null-figure"
    shutil.rmtree(path, ignore_errors=True)
    build_site(path)
    page = open_page(browser, f"{server.url}registries/null-figure/")
    page.click("text=uppercase")
    page.wait_for_selector("article.plugin")
    assert badge(page)[0] == "verified", page.inner_text("main")[:500]
    assert page.js_errors == []


def test_a_hostile_base_url_is_quoted_in_every_command_the_page_offers(browser: Any, server: Server) -> None:
    """base_url is any string the index key signed: pasted into the copy buttons unquoted, a
    stolen index key became code execution on whoever pasted the trust or install command.  One
    holding a quote, a backslash, a space or a control gets no command at all (fish reads \\'
    inside single quotes; a control reaches the terminal); others are quoted."""
    import ast
    import shlex

    base = "https://x.example/a;b&c$(id)/"  # no quote, backslash, space or control: quoted
    page = open_page(browser, site_url(server, "hostile-base-url", base_url=base))
    page.click("text=validate_email")
    page.wait_for_selector("article.plugin")
    blocks = page.evaluate("Array.from(document.querySelectorAll('pre code')).map(e => e.textContent)")
    shells = [b for b in blocks if b.startswith("registry-tool ")]
    assert len(shells) == 2, blocks  # install and trust
    for command in shells:
        words = shlex.split(command)
        assert base in words, words
        assert f"'{base}'" in command  # single-quoted: nothing in it is read by bash, zsh or fish
    [snippet] = [b for b in blocks if "Registry.open(" in b]
    calls = [n for n in ast.walk(ast.parse(snippet)) if isinstance(n, ast.Call)]
    opened = [c for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr == "open"]
    assert [ast.literal_eval(c.args[0]) for c in opened] == [base]
    for hostile in ('https://x.example/ $(touch P) "); __import__("os") (\'/', "https://x.example/\\';id;#/"):
        page = open_page(
            browser, site_url(server, "hostile-base-url-2", base_url=hostile) + "#/plugin/validate_email"
        )
        page.wait_for_selector("article.plugin")
        assert page.evaluate("document.querySelectorAll('pre code').length") == 0
        assert "no command is offered" in page.inner_text("main")


def test_long_unbroken_text_wraps_within_a_phone_screen(browser: Any, server: Server) -> None:
    """A 500-character description without spaces stretched the list to thousands of pixels."""
    from .site_fixture import Plugin, Release, sample_plugins

    plugins = [
        *sample_plugins(),
        Plugin("longtext", "community", [Release("1.0.0", "x" * 500, license="MIT")]),
    ]
    page = open_page(
        browser, site_url(server, "long-text", plugins=plugins), viewport={"width": 390, "height": 800}
    )
    page.wait_for_selector("#results li")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("text=longtext")
    page.wait_for_selector("article.plugin")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_encoded_and_unknown_plugin_routes_render(browser: Any, server: Server) -> None:
    """#/plugin/%76alidate_email stayed on "Verifying..." (the raw hash was compared with the
    decoded name); #/plugin/validate_email/9.9.9 showed 1.0.0 without a word."""
    url = site_url(server, "routes")
    page = open_page(browser, url + "#/plugin/%76alidate_email")
    page.wait_for_selector("article.plugin")
    assert page.inner_text("h1").startswith("validate_email")
    page = open_page(browser, url + "#/plugin/validate_email/9.9.9")
    page.wait_for_selector("h1:has-text('No version 9.9.9 of validate_email')")
    assert "1.0.0" not in page.inner_text("h1")
    assert page.js_errors == []


def test_versions_beyond_two_to_the_53_are_ordered_exactly(browser: Any, server: Server) -> None:
    """Version numbers reach 2^64 - 1; compared as JavaScript numbers, 9007199254740993 sorted below
    9007199254740992 and 1.0.0-10000000000000000001 below 1.0.0-9999999999999999999."""
    from .site_fixture import Plugin, Release, sample_plugins

    big = ["9007199254740992.0.0", "9007199254740993.0.0", "9007199254740994.0.0"]
    pre = ["1.0.0-9999999999999999999", "1.0.0-10000000000000000001"]
    plugins = [
        *sample_plugins(),
        Plugin("xbig", "community", [Release(v, "big versions", license="MIT") for v in big]),
        Plugin("xpre", "community", [Release(v, "long prereleases", license="MIT") for v in pre]),
    ]
    url = site_url(server, "big-versions", plugins=plugins)
    for name, newest_first in (("xbig", big[::-1]), ("xpre", pre[::-1])):
        page = open_page(browser, f"{url}#/plugin/{name}")
        page.wait_for_selector("article.plugin")
        # The first cell of each row of "Every published version, newest first".
        cells = page.evaluate(
            "Array.from(document.querySelectorAll('table')).filter(t => t.caption &&"
            " t.caption.textContent.startsWith('Every published version')).flatMap(t =>"
            " Array.from(t.querySelectorAll('tbody tr')).map(r => r.cells[0].textContent))"
        )
        shown = [c.removesuffix(" (shown)") for c in cells]
        assert shown == newest_first, shown
        assert page.js_errors == []


def test_invisible_and_bidi_characters_are_shown_as_escapes(browser: Any, server: Server) -> None:
    """A description "r\u200fevil\u200e" rendered as "revil"; the CLI shows the escapes."""
    from .site_fixture import Plugin, Release, sample_plugins

    text = "r\u200fevil\u200e and\u2060 more"
    plugins = [*sample_plugins(), Plugin("xhidden", "community", [Release("1.0.0", text, license="MIT")])]
    page = open_page(browser, site_url(server, "invisible", plugins=plugins) + "#/plugin/xhidden")
    page.wait_for_selector("article.plugin")
    main = page.inner_text("main")
    assert "r\\u200fevil\\u200e and\\u2060 more" in main, main[:800]
    assert "\u200f" not in main and "\u2060" not in main


def test_expired_registry_shows_failure(browser: Any, server: Server) -> None:
    page = open_page(browser, site_url(server, "expired", expired=True))
    assert_failed(page, "Expired registry", "freeze")
    assert "registry.json expired at" in page.inner_text(".failure")


def test_registry_signed_by_unknown_key_shows_failure(browser: Any, server: Server) -> None:
    page = open_page(browser, site_url(server, "wrong-key", index_key=KEYS["mallory"]))
    assert_failed(page, "Unknown key", "bad-signature")
    assert KEYS["mallory"].key_id in page.inner_text(".failure")


def test_registry_signed_by_a_maintainer_key_is_refused(browser: Any, server: Server) -> None:
    # a key the root knows, but not in the index role
    page = open_page(browser, site_url(server, "maintainer-key", index_key=KEYS["ferritelabs"]))
    assert_failed(page, "Unknown key", "bad-signature")


def test_edited_registry_json_shows_failure(browser: Any, server: Server) -> None:
    url = site_url(server, "edited-top")
    top = server.root / "registries" / "edited-top" / "registry.json"
    tamper(top, b'"plugins":4', b'"plugins":5')
    page = open_page(browser, url)
    assert_failed(page, "Bad signature", "bad-signature")


def test_older_registry_after_a_newer_one_is_a_rollback(browser: Any, server: Server) -> None:
    url = site_url(server, "rollback")
    page = open_page(browser, url)
    assert badge(page)[0] == "verified"
    path = server.root / "registries" / "rollback"
    keep = server.root / "rollback-keep"
    shutil.copytree(path / "root", keep / "root")
    shutil.copy(path / "index.html", keep / "index.html")
    shutil.rmtree(path)
    build_site(path, now=datetime.now(UTC) - timedelta(days=1))  # validly signed, unexpired, older
    # the same root chain and page (the fixture's root expiry follows its clock)
    shutil.rmtree(path / "root")
    shutil.copytree(keep / "root", path / "root")
    shutil.copy(keep / "index.html", path / "index.html")
    page.reload()
    page.wait_for_selector(SETTLED)
    assert_failed(page, "Rolled-back registry", "rollback")
    # a browser that never saw the newer one accepts it (the page keeps no other state)
    assert badge(open_page(browser, url))[0] == "verified"


def test_catalog_entry_of_the_wrong_shape_is_malformed(browser: Any, server: Server) -> None:
    url = site_url(server, "bad-entry")
    site_dir = server.root / "registries" / "bad-entry"
    top = json.loads((site_dir / "registry.json").read_bytes())
    catalog = site_dir / "meta" / top["catalog"]["sha256"][:2] / f"{top['catalog']['sha256']}.json"
    doc = json.loads(catalog.read_bytes())
    doc["plugins"]["uppercase"]["permissions"] = "keys"  # a string where a list belongs
    data = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
    # re-pin and re-sign as the publisher would: only the shape rule can refuse it
    new_pin = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (site_dir / "meta" / new_pin["sha256"][:2]).mkdir(exist_ok=True)
    (site_dir / "meta" / new_pin["sha256"][:2] / f"{new_pin['sha256']}.json").write_bytes(data)
    top["catalog"] = new_pin
    top_bytes = (json.dumps(top, sort_keys=True, separators=(",", ":")) + "\n").encode()
    (site_dir / "registry.json").write_bytes(top_bytes)
    (site_dir / "registry.json.minisig").write_text(sign_bytes(KEYS["index"], top_bytes, trusted_comment="t"))
    page = open_page(browser, url)
    assert_failed(page, "Malformed document", "malformed")
    assert "uppercase permissions" in page.inner_text(".failure")


def test_forged_root_version_shows_failure(browser: Any, server: Server) -> None:
    url = site_url(server, "forged-root")
    root2 = server.root / "registries" / "forged-root" / "root" / "2.root.json"
    doc = json.loads(root2.read_bytes())
    doc["maintainers"]["mallory"] = {"keyids": [next(iter(doc["keys"]))], "plugins": ["*"]}
    root2.write_text(json.dumps(doc, indent=2))
    page = open_page(browser, url)
    assert_failed(page, "Bad signature", "root-chain")


def test_root_key_rotation_signed_by_both_roles_verifies(browser: Any, server: Server) -> None:
    page = open_page(browser, site_url(server, "rotated", rotation_signers=("root-a", "root-b", "root-c")))
    state, text = badge(page)
    assert state == "verified", text
    assert "root v3" in text


def test_rotation_signed_only_by_the_new_role_is_refused(browser: Any, server: Server) -> None:
    # root-a + root-c meet version 3's own threshold but only one of version 2's two keys signed
    page = open_page(browser, site_url(server, "rotated-new-only", rotation_signers=("root-a", "root-c")))
    assert_failed(page, "Not enough signatures", "root-chain")
    assert "root role of root version 2" in page.inner_text(".failure")


def test_rotation_signed_only_by_the_old_role_is_refused(browser: Any, server: Server) -> None:
    page = open_page(browser, site_url(server, "rotated-old-only", rotation_signers=("root-a", "root-b")))
    assert_failed(page, "Not enough signatures", "root-chain")
    assert "root role of root version 3" in page.inner_text(".failure")


def test_unsigned_extra_root_version_is_refused_unparsed(browser: Any, server: Server) -> None:
    url = site_url(server, "root3")
    (server.root / "registries" / "root3" / "root" / "3.root.json").write_text("{not json")
    page = open_page(browser, url)
    assert_failed(page, "Not enough signatures", "root-chain")


# --------------------------------------------------------------------------- scale


def test_search_10k_plugins_under_50ms_per_keystroke(browser: Any, server: Server) -> None:
    plugins = sample_plugins() + synthetic_plugins(10_000)
    url = site_url(server, "big", plugins=plugins)
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector(SETTLED, timeout=60000)
    assert badge(page)[0] == "verified"
    assert page.get_attribute("#result-status", "data-count") == "10004"
    timings = []
    page.focus("#q")
    for ch in "json tool 00":
        page.keyboard.type(ch)
        timings.append(float(page.get_attribute("#result-status", "data-search-ms")))
    expected = sum(
        all(
            t in "\n".join([p.name, p.releases[-1].description, *p.releases[-1].keywords]).lower()
            for t in terms
        )
        for p in plugins
        for terms in [["json", "tool", "00"]]
    )
    assert page.get_attribute("#result-status", "data-count") == str(expected)
    assert page.locator("#results li").count() == 50  # one page
    median, worst = statistics.median(timings), max(timings)
    print(f"\ncatalog search over 10,004 plugins: median {median:.1f} ms, worst {worst:.1f} ms per keystroke")
    # The goal is 50 ms; the bound here is loose so a loaded CI machine cannot make it flaky,
    # while a quadratic filter or a full re-render would still fail it.
    assert median < 50 * 4


# --------------------------------------------------------------------------- the real build


def test_real_build_of_the_sample_index_verifies(browser: Any, server: Server) -> None:
    """`registry-tool build` on the bundled index, the page added, served under a sub-path."""
    import subprocess
    import sys

    from registry_tool.registry.catalog import write_catalog

    repo = Path(__file__).resolve().parents[2]
    out = server.root / "real" / "site"
    shutil.rmtree(out.parent, ignore_errors=True)
    out.parent.mkdir(parents=True)
    build = [sys.executable, "-m", "registry_tool", "build", str(repo / "index"), "--out", str(out)]
    build += ["--key", str(repo / "samples" / "keys" / "index.key"), "--no-smoke"]
    subprocess.run(build, check=True, capture_output=True, cwd=repo)
    if json.loads((out / "registry.json").read_bytes())["format_version"] != 2:
        pytest.skip("this checkout's build writes registry format 1; the catalog reads format 2")
    write_catalog(out, (repo / "index" / "root" / "1.root.json").read_bytes())
    page = open_page(browser, f"{server.url}real/site/")
    state, text = badge(page)
    assert state == "verified", text
    count = int(page.get_attribute("#result-status", "data-count"))
    assert count == json.loads((out / "registry.json").read_bytes())["counts"]["plugins"]
    page.click("text=visit_counter")
    page.wait_for_selector("article.plugin")
    assert "--registry http://127.0.0.1:8765/" in page.inner_text("main")
    assert badge(page)[0] == "verified"
    assert page.js_errors == []


def _resign_top(site_dir: Path, **fields: Any) -> None:
    """registry.json with ``fields`` changed, signed by the index key as a key holder would."""
    top = json.loads((site_dir / "registry.json").read_bytes())
    top.update(fields)
    data = (json.dumps(top, sort_keys=True, separators=(",", ":")) + "\n").encode()
    (site_dir / "registry.json").write_bytes(data)
    (site_dir / "registry.json.minisig").write_text(sign_bytes(KEYS["index"], data, trusted_comment="t"))


def test_a_mirror_hiding_the_newer_root_is_a_rollback(browser: Any, server: Server) -> None:
    """Root v3 verified, then the mirror answers 404 for it and serves a registry.json naming v2 (an
    old or rotated-out key can sign it): the page went back to root v2 with a green badge."""
    url = site_url(server, "hidden-root", rotation_signers=("root-a", "root-b", "root-c"))
    site_dir = server.root / "registries" / "hidden-root"
    page = open_page(browser, url)
    assert badge(page)[0] == "verified" and "root v3" in badge(page)[1]
    for f in (site_dir / "root").glob("3.root.json*"):
        f.unlink()
    top = json.loads((site_dir / "registry.json").read_bytes())
    _resign_top(site_dir, root_version=2, version=top["version"] + 100)
    page.reload()
    page.wait_for_selector(SETTLED)
    assert_failed(page, "Rolled-back registry", "rollback")
    assert "root version 3" in page.inner_text(".failure")


def test_the_rollback_memory_is_the_registrys_not_the_urls(browser: Any, server: Server) -> None:
    """The same older files under another path of the origin (/s4-old/, /s4//) started afresh."""
    url = site_url(server, "newer")
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector(SETTLED)
    assert badge(page)[0] == "verified"
    older = server.root / "registries" / "older"
    shutil.copytree(server.root / "registries" / "newer", older, dirs_exist_ok=True)
    top = json.loads((older / "registry.json").read_bytes())
    _resign_top(older, version=top["version"] - 1)
    for path in (f"{server.url}registries/older/", url.replace("/newer/", "//newer/")):
        if path.endswith("//newer/"):
            _resign_top(server.root / "registries" / "newer", version=top["version"] - 1)
        page.goto(path)
        page.wait_for_selector(SETTLED)
        assert page.get_attribute(".failure", "data-error") == "rollback", path


def test_route_text_never_reaches_the_page(browser: Any, server: Server) -> None:
    """A crafted link put "No plugin validate_email here. SECURITY NOTICE: ... curl | sh" in the
    heading under the green badge."""
    url = site_url(server, "spoof")
    for route in (
        "#/plugin/validate_email%20here.%20SECURITY%20NOTICE%3A%20run%20curl%20evil%20%7C%20sh",
        "#/plugin/validate_email/1.0.0%20is%20compromised%3B%20run%20curl%20evil%20%7C%20sh",
    ):
        page = open_page(browser, url + route)
        page.wait_for_selector("h1:has-text('No such plugin or version')")
        assert "curl" not in page.inner_text("main")
        assert page.js_errors == []


def test_a_late_failure_never_replaces_the_page_navigated_to(browser: Any, server: Server) -> None:
    url = site_url(server, "late")
    site = server.root / "registries" / "late"
    page = open_page(browser, url)
    doc_path = next(p for p in (site / "meta").rglob("*.json") if b'"name":"healthcheck"' in p.read_bytes())
    tamper(doc_path, b'"healthcheck"', b'"healthcheci"')
    server.slow[doc_path.name] = 1.5  # the tampered document answers after the next view is shown
    try:
        page.evaluate("location.hash = '#/plugin/healthcheck'")
        page.wait_for_timeout(100)
        page.evaluate("location.hash = '#/plugin/uppercase'")
        page.wait_for_selector("article.plugin")
        page.wait_for_timeout(2500)
    finally:
        server.slow.clear()
    assert page.locator("article.plugin").count() == 1 and badge(page)[0] == "verified"
    assert page.locator(".failure").count() == 0


def test_the_skip_link_keeps_the_view(browser: Any, good: str) -> None:
    page = open_page(browser, good + "#/root")
    page.wait_for_selector("main h1")
    heading = page.inner_text("main h1")
    page.locator("a.skip").focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(200)
    assert page.inner_text("main h1") == heading


@pytest.mark.parametrize(
    "registry",
    [
        {"description": {"x": 1}},
        {"base_url": 12345},
        {"base_url": ["https://a.example/"]},
        {"host": {"name": "ferrite", "versions": {"x": 1}}},
    ],
)
def test_registry_fields_of_another_type_are_malformed(
    browser: Any, server: Server, registry: dict[str, Any]
) -> None:
    """Re-signed with the index key: the page showed "Verified" (or threw), the client refuses them."""
    name = "types-" + hashlib.sha256(json.dumps(registry).encode()).hexdigest()[:8]
    url = site_url(server, name)
    site_dir = server.root / "registries" / name
    top = json.loads((site_dir / "registry.json").read_bytes())
    _resign_top(site_dir, registry={**top["registry"], **registry})
    page = open_page(browser, url)
    assert_failed(page, "Malformed document", "malformed")


def test_a_page_opened_at_the_skip_links_target_verifies(browser: Any, server: Server) -> None:
    page = open_page(browser, site_url(server, "at-main") + "#main")
    assert badge(page)[0] == "verified"
    assert page.locator("#results li").count() > 0


def test_the_rollback_floor_an_older_page_stored_still_holds(browser: Any, server: Server) -> None:
    """The older page kept the registry version under the site's URL: it was dropped on upgrade."""
    url = site_url(server, "legacy-floor")
    page = open_page(browser, url)
    assert badge(page)[0] == "verified"
    pinned = page.evaluate("RegistryCatalog.app.state.pinnedSha256")
    page.evaluate(
        "([k]) => { localStorage.clear(); localStorage.setItem(k, '99999999999999'); }",
        [f"registry-tool catalog {pinned} {url}"],
    )
    page.reload()
    page.wait_for_selector(SETTLED)
    assert_failed(page, "Rolled-back registry", "rollback")


@pytest.mark.parametrize("role", ["index", "root"])
def test_a_root_that_replaced_the_index_key_resets_the_floor(browser: Any, server: Server, role: str) -> None:
    """Fast-forward recovery (conformance decision 2), as the client does it: after a root step
    removed the index key, a registry.json of a lower version signed by the new key verifies; a
    step that rotated only root keys keeps the floor."""
    from registry_tool.trust.editing import derive, rotate_keys
    from registry_tool.trust.root import Root

    from .site_fixture import REGISTRY, seed_key

    url = site_url(server, f"recovered-{role}")
    site_dir = server.root / "registries" / f"recovered-{role}"
    page = open_page(browser, url)
    assert badge(page)[0] == "verified"
    index = seed_key("index-2") if role == "index" else KEYS["index"]
    old, added = (KEYS["index"], index) if role == "index" else (KEYS["root-b"], KEYS["root-c"])
    v2 = (site_dir / "root" / "2.root.json").read_bytes()
    v3 = derive(Root.parse(v2), rotate_keys(role, add=[added.public_key], remove=[old.key_id]))
    (site_dir / "root" / "3.root.json").write_bytes(v3)
    for label in ("root-a", "root-b", "root-c"):  # both roles sign a root rotation
        k = KEYS[label]
        (site_dir / "root" / f"3.root.json.{k.key_id}.minisig").write_text(
            sign_bytes(k, v3, trusted_comment=f"registry-root\tregistry:{REGISTRY}\tversion:3")
        )
    top = json.loads((site_dir / "registry.json").read_bytes())
    top.update(root_version=3, version=top["version"] - 5)
    data = (json.dumps(top, sort_keys=True, separators=(",", ":")) + "\n").encode()
    (site_dir / "registry.json").write_bytes(data)
    (site_dir / "registry.json.minisig").write_text(sign_bytes(index, data, trusted_comment="t"))
    page.reload()
    page.wait_for_selector(SETTLED)
    state, text = badge(page)
    if role == "index":
        assert state == "verified" and "root v3" in text, text
    else:
        assert_failed(page, "Rolled-back registry", "rollback")


def test_a_tab_left_open_past_the_expiry_shows_nothing_as_verified(browser: Any, good: str) -> None:
    page = open_page(browser, good)
    assert badge(page)[0] == "verified"
    page.evaluate("Date.now = () => Date.UTC(2100, 0, 1)")  # the tab is still open in 2100
    page.evaluate("location.hash = '#/root'")
    page.wait_for_selector("#badge[data-state=failed]")
    assert page.get_attribute(".failure", "data-error") == "freeze"
    assert "while this page was open" in page.inner_text(".failure")
    assert page.locator("article").count() == 0
