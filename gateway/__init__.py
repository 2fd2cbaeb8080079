"""The aiohttp gateway: AdCP over MCP and REST in, events out. Never imports faust."""
