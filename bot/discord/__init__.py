"""The Discord edge: a thin layer that turns interactions into calls on the knowledge service.

Nothing here decides what an answer says; it renders ``bot.records.Answer`` and stores feedback.
"""
