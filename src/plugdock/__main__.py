from plugdock.cli import main

main()
