"""``python -m registry_tool``: the same entry point as the ``registry-tool`` console script."""

from registry_tool._console import main

main()
