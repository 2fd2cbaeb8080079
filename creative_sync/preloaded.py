"""What the fork server of `creative_sync.processes.preload_children` imports once, so that a
forked worker, gateway or agent does not pay it: the adcp SDK (client, server framework, types:
~18 CPU-s), faust and aiokafka, and the processes' own modules. Imports only: no thread, no loop,
no socket may exist in a process that forks."""
import adcp  # noqa: F401
import adcp.server  # noqa: F401
import faust  # noqa: F401
from adcp import ADCPClient  # noqa: F401

import creative_sync.cli  # noqa: F401
import creative_sync.gateway_main  # noqa: F401
import creative_sync.sim_agents  # noqa: F401
import creative_sync.worker  # noqa: F401
import gateway.app  # noqa: F401
import streams.app  # noqa: F401
