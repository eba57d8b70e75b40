from registry_tool._launch import main

main()
