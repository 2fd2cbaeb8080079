"""Typed keys of the gateway's application state (aiohttp AppKeys)."""
from datetime import datetime

from aiohttp import web

from creative_sync.settings import Settings
from gateway.broker import BrokerLink
from gateway.metrics import GatewayMetrics
from gateway.mcp import Sessions
from gateway.operations import Registry
from streams.owner_client import Owners
from gateway.read_model import LibraryView
from gateway.tasks import Tasks
from topics.catalogue import Codecs
from gateway.entities import Entities
from topics.views import AgentDirectory

SETTINGS = web.AppKey("settings", Settings)
PRINCIPALS = web.AppKey("principals", object)  # gateway.principals.Principals: authenticate(token)
BROKER = web.AppKey("broker", BrokerLink)
CODECS = web.AppKey("codecs", Codecs)
METRICS = web.AppKey("metrics", GatewayMetrics)
OPERATIONS = web.AppKey("operations", Registry)
MCP_SESSIONS = web.AppKey("mcp_sessions", Sessions)
A2A = web.AppKey("a2a", object)  # gateway.a2a.A2AServer (it imports keys)
LIBRARY_VIEW = web.AppKey("library_view", LibraryView)
OWNERS = web.AppKey("owners", Owners)  # reads of an account's library, asked of the worker that owns it
AGENTS = web.AppKey("agents", AgentDirectory)
CAMPAIGNS = web.AppKey("campaigns", Entities)  # read from the worker that owns the account
INBOUND = web.AppKey("inbound", object)  # gateway.agent_webhooks.Inbound (it imports keys)
TASKS = web.AppKey("tasks", Tasks)
CLAIMS = web.AppKey("claims", set)  # (kind, scoped id) of entities being created by this gateway
VERSION = web.AppKey("version", str)
STARTED_AT = web.AppKey("started_at", datetime)
LIVE = web.AppKey("live", object)  # gateway.live.LiveFeed (it imports keys)
