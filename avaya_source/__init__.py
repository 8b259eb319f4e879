"""Avaya Contact Recorder source: safe Search/Replay client, sliding-window poller, and a mock recorder."""
