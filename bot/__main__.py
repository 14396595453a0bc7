"""``python -m bot`` does what the ``directive-bot`` command does."""

from bot.cli import main

if __name__ == "__main__":
    main()
