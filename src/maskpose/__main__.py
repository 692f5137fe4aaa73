from maskpose.cli import main

main()
