"""The reality suite: what the simulation shows, checked against real loopback TCP."""
