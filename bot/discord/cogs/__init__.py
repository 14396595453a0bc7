"""One cog per module (or package with a private ``_cog.py``), each with ``async def setup(bot)``.

``bot.discord.client.find_extensions`` loads every public module here.
"""
