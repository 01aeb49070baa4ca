"""The Discord side that every cog shares: the Bot subclass, job launch, status cards,
cards and views, permissions, the moderator log sink and discord.py fixes.

Cogs (`cogs/`) import from here; nothing here imports a cog.
"""
