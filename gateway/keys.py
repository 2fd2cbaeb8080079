"""Typed keys of the gateway's application state (aiohttp AppKeys)."""
from aiohttp import web

from creative_sync.settings import Settings
from gateway.auth import PrincipalStore
from gateway.broker import BrokerLink
from gateway.metrics import GatewayMetrics
from topics.catalogue import Codecs

SETTINGS = web.AppKey("settings", Settings)
PRINCIPALS = web.AppKey("principals", PrincipalStore)
BROKER = web.AppKey("broker", BrokerLink)
CODECS = web.AppKey("codecs", Codecs)
METRICS = web.AppKey("metrics", GatewayMetrics)
