from rackboot.cli import main

main()
