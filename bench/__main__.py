"""Run every benchmark: `make bench` or `python -m bench`."""

from bench import startup

if __name__ == "__main__":
    startup.main()
