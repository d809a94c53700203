"""Run the five click-tracking demos: `python scripts/demo_click_tracking.py [--server URL]`."""

from clickstats.cli import main

if __name__ == "__main__":
    main(["demo", *__import__("sys").argv[1:]])
