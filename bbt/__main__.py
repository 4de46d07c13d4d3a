from bbt.cli import main

main()
