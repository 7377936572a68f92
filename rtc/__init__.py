"""Live meetings: rooms, signalling over WebSocket, the pass-through SFU on aiortc."""
