"""Pure DNS wire helpers: no sockets, no asyncio, no plugins."""
