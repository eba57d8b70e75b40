from registry_tool._cli import main

main()
