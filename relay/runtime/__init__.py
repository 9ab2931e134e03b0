"""The running relay: config, store, scheduler and sender wired together for one lifespan.

`core.py` is `Relay` itself; `events.py` turns ingested events and operational notices
into stored events with their deliveries; `reload.py` reads an edited config file as it
will run and notices the edit; `housekeeping.py` is the once-a-minute round. The process
around it (uvicorn, signals, interpreter tuning) is relay.process.
"""

from relay.runtime.core import SHUTDOWN_GRACE, Relay
from relay.runtime.events import EventIn, timestamp

__all__ = ["SHUTDOWN_GRACE", "EventIn", "Relay", "timestamp"]
