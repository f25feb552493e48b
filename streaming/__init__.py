"""The streaming engine: one websocket multiplexing services, with ordered, resumable delivery."""
