"""Attack: a pull request adds a git submodule entry (a gitlink, mode 160000) to the index.

The working tree shows it as an empty folder, so a check that walks the files sees nothing: a
valid signed release with a gitlink beside it passed with no finding.  Once merged, any recursive
checkout (``git clone --recursive``, ``actions/checkout`` with ``submodules: true``) puts another
repository's files into a signed release folder or the root folder.  Only git's modes show it.
"""

from __future__ import annotations

import pytest

from .conftest import IndexRepo, git

COMMIT = "1234567890123456789012345678901234567890"


@pytest.mark.parametrize(
    "where", ["plugins/alpha/1.1.0/sub", "plugins/alpha/1.1.0/tests", "root/vendor", "plugins/gamma"]
)
def test_a_gitlink_anywhere_in_the_index_is_refused(index_repo: IndexRepo, where: str) -> None:
    index_repo.release("alpha", "1.1.0")
    git(index_repo.path, "add", "-A")
    git(index_repo.path, "update-index", "--add", "--cacheinfo", f"160000,{COMMIT},index/{where}")
    git(index_repo.path, "commit", "-q", "-m", "a release and a submodule")
    report = index_repo.check()
    assert not report.ok
    refused = [f for _, f in report.findings() if f.rule == "unexpected-file" and f.file == f"index/{where}"]
    assert refused and "submodule" in refused[0].message
