"""debug-producer: send ping/stop to queue-control and (optionally) wait for the pong."""
