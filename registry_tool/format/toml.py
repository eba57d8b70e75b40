"""The TOML parser for signed files on the verifying paths (plugin.toml, yank.toml).

``tomli`` 2.2 is the parser the standard library vendors as ``tomllib`` (TOML 1.0, the same
results and errors), shipped compiled with mypyc: 3-4x faster per manifest, which is most of
what checking a release costs beyond its hashes and signatures.  Kept below 2.3, whose TOML 1.1
would accept manifests the build (``tomllib``) refuses; a test pins that agreement.  Deep
nesting raises ``RecursionError`` as in tomllib.
"""

from __future__ import annotations

from tomli import TOMLDecodeError, loads

__all__ = ["TOMLDecodeError", "loads"]
