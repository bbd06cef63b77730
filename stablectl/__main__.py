from stablectl.cli.main import main

main()
