from clickstats.cli import main

main()
