from creative_sync.cli import main

main()
